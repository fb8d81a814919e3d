package registry

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-obs/vigil/storage/postgres/registrystore"
)

// selfMetrics are the registry's own metrics; nil fields when no
// registerer was given.
type selfMetrics struct {
	runs        *prometheus.CounterVec
	transitions *prometheus.CounterVec
	deregs      prometheus.Counter
}

func newSelfMetrics(reg prometheus.Registerer) (*selfMetrics, error) {
	m := &selfMetrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_registry_check_runs_total",
			Help: "Health check runs on this replica, by kind and result status."}, []string{"kind", "status"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_registry_check_transitions_total",
			Help: "Check status changes made through this replica, by new status."}, []string{"status"}),
		deregs: prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_registry_critical_deregistrations_total",
			Help: "Services this replica deregistered after their DeregisterCriticalServiceAfter."}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.runs, m.transitions, m.deregs} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *selfMetrics) transitioned(ts ...*registrystore.Transition) {
	for _, t := range ts {
		if t != nil {
			m.transitions.WithLabelValues(t.Status).Inc()
		}
	}
}
