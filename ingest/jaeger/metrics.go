package jaeger

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-obs/vigil/ingest"
)

// udpMetrics counts datagrams per UDP listener. Spans are counted by
// ingest.Metrics; these count packets, which a datagram that cannot be
// decoded or is dropped before decoding has no span count for.
//
// For each listener, received = malformed + dropped + packets whose spans
// were stored (all reasons summed but kernel_buffer, datagrams the kernel
// dropped before Vigil could read them), once the queue has drained.
type udpMetrics struct {
	received  *prometheus.CounterVec
	malformed *prometheus.CounterVec
	dropped   *prometheus.CounterVec
}

func newUDPMetrics(reg prometheus.Registerer) (*udpMetrics, error) {
	m := &udpMetrics{
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "vigil", Subsystem: "ingest", Name: "jaeger_udp_packets_received_total",
			Help: "Number of Jaeger agent UDP datagrams read, by listener (compact or binary port).",
		}, []string{"listener"}),
		malformed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "vigil", Subsystem: "ingest", Name: "jaeger_udp_packets_malformed_total",
			Help: "Number of Jaeger agent UDP datagrams that could not be decoded, by listener and reason (empty, truncated, unknown_protocol, decode).",
		}, []string{"listener", "reason"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "vigil", Subsystem: "ingest", Name: "jaeger_udp_packets_dropped_total",
			Help: "Number of Jaeger agent UDP datagrams whose spans were not stored, by listener and reason (kernel_buffer: dropped by the kernel, its socket receive buffer full, on Linux; worker_queue_full, invalid, or the pipeline's queue_full, unavailable, canceled, error).",
		}, []string{"listener", "reason"}),
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.received, m.malformed, m.dropped} {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("register jaeger udp metrics: %w", err)
	}
	return m, nil
}

// packetCounters are the counters of one listener.
type packetCounters struct {
	received  prometheus.Counter
	malformed *prometheus.CounterVec // curried with the listener
	dropped   *prometheus.CounterVec // curried with the listener
}

// bind returns the counters of one listener; the series that alerts
// usually watch exist at 0 from this call on.
func (m *udpMetrics) bind(listener string) packetCounters {
	l := prometheus.Labels{"listener": listener}
	pc := packetCounters{
		received:  m.received.WithLabelValues(listener),
		malformed: m.malformed.MustCurryWith(l),
		dropped:   m.dropped.MustCurryWith(l),
	}
	pc.malformed.WithLabelValues(malformedDecode)
	pc.dropped.WithLabelValues(droppedWorkerQueueFull)
	pc.dropped.WithLabelValues(ingest.ReasonQueueFull)
	if kernelDropsSupported {
		pc.dropped.WithLabelValues(droppedKernelBuffer)
	}
	return pc
}
