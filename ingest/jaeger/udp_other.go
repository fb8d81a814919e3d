//go:build !linux

package jaeger

import (
	"errors"
	"net"
)

// kernelDropsSupported tells whether the kernel reports the datagrams it
// dropped; only Linux does (SO_RXQ_OVFL).
const kernelDropsSupported = false

var oobBytes = 0

var errNotLinux = errors.New("not supported on this system")

func enableKernelDrops(*net.UDPConn) error { return nil }

func receiveBufferBytes(*net.UDPConn) (int, error) { return 0, errNotLinux }

func kernelDrops([]byte) (uint32, bool) { return 0, false }
