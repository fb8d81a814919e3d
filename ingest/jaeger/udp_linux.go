//go:build linux

package jaeger

import (
	"encoding/binary"
	"fmt"
	"net"
	"syscall"
)

// kernelDropsSupported tells whether the kernel reports the datagrams it
// dropped (SO_RXQ_OVFL).
const kernelDropsSupported = true

// oobBytes is the control-message space ReadMsgUDP needs for the
// SO_RXQ_OVFL counter.
var oobBytes = syscall.CmsgSpace(4)

// enableKernelDrops asks the kernel to attach to each datagram the number
// of datagrams the socket has dropped so far because its receive buffer
// was full (SO_RXQ_OVFL). The counter is only attached once it is not
// zero.
func enableKernelDrops(conn *net.UDPConn) error {
	return sockopt(conn, func(fd int) error {
		return syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RXQ_OVFL, 1)
	})
}

// receiveBufferBytes returns the socket's SO_RCVBUF as the kernel reports
// it: twice the usable size, its bookkeeping included.
func receiveBufferBytes(conn *net.UDPConn) (int, error) {
	var n int
	err := sockopt(conn, func(fd int) error {
		var err error
		n, err = syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF)
		return err
	})
	return n, err
}

func sockopt(conn *net.UDPConn, f func(fd int) error) error {
	rc, err := conn.SyscallConn()
	if err != nil {
		return fmt.Errorf("socket of udp conn: %w", err)
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
		return fmt.Errorf("control udp socket: %w", err)
	}
	return ferr
}

// kernelDrops returns the cumulative drop counter of the socket carried
// by the control messages of one datagram, and false when there is none.
// The counter is a uint32 that wraps.
func kernelDrops(oob []byte) (uint32, bool) {
	if len(oob) == 0 {
		return 0, false
	}
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return 0, false
	}
	for _, m := range msgs {
		if m.Header.Level == syscall.SOL_SOCKET && m.Header.Type == syscall.SO_RXQ_OVFL && len(m.Data) >= 4 {
			return binary.NativeEndian.Uint32(m.Data), true
		}
	}
	return 0, false
}
