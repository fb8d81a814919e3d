package rules

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	prom "github.com/prometheus/prometheus/promql"
	promrules "github.com/prometheus/prometheus/rules"

	"github.com/vigil-obs/vigil/query/promql"
)

// Rule types, as the Prometheus API names them.
const (
	TypeAlerting  = "alerting"
	TypeRecording = "recording"
)

// Group is a snapshot of one rule group.
type Group struct {
	Name     string
	File     string
	Interval time.Duration
	Limit    int
	Rules    []Rule
	// EvaluationTime is how long the last evaluation took, and
	// LastEvaluation when it started; zero before the first.
	EvaluationTime time.Duration
	LastEvaluation time.Time
}

// Rule is a snapshot of one alerting or recording rule.
type Rule struct {
	// Type is TypeAlerting or TypeRecording.
	Type  string
	Name  string
	Query string
	// Labels are the rule's labels (merged with its group's).
	Labels labels.Labels
	// Health is "ok", "err" or "unknown" (not evaluated yet), and
	// LastError the error of the last evaluation.
	Health         string
	LastError      string
	EvaluationTime time.Duration
	LastEvaluation time.Time

	// Alerting rules only.

	// State is the highest state of the rule's alerts: "firing",
	// "pending", "inactive", or "unknown" before the first evaluation.
	State         string
	Duration      time.Duration // `for`
	KeepFiringFor time.Duration
	Annotations   labels.Labels
	Alerts        []Alert
}

// Alert is a snapshot of one active (pending or firing) alert.
type Alert struct {
	Labels      labels.Labels
	Annotations labels.Labels
	// State is "pending" or "firing".
	State string
	// ActiveAt is when the alert's condition began to hold.
	ActiveAt time.Time
	// KeepFiringSince is when the condition stopped holding while
	// keep_firing_for holds the alert; zero otherwise.
	KeepFiringSince time.Time
	// Value is the expression's value at the last evaluation; NaN when
	// not known (on a replica that does not evaluate).
	Value float64
}

// RuleGroups returns the rule groups sorted by file and name. On the
// replica that evaluates them they carry their evaluation state from
// memory; on the others, the state the evaluating replica last shared
// through Options.States (without States: health and state "unknown", no
// alerts).
func (m *Manager) RuleGroups(ctx context.Context) ([]Group, error) {
	m.mu.RLock()
	pm, view := m.prom, m.set.view
	m.mu.RUnlock()
	groups := view
	if pm != nil {
		groups = pm.RuleGroups()
	}
	out := make([]Group, 0, len(groups))
	for _, g := range groups {
		out = append(out, groupState(g))
	}
	if pm != nil || m.opts.States == nil {
		return out, nil
	}
	out, _, err := m.sharedGroups(ctx, out)
	return out, err
}

func groupState(g *promrules.Group) Group {
	out := Group{
		Name:           g.Name(),
		File:           g.File(),
		Interval:       g.Interval(),
		Limit:          g.Limit(),
		EvaluationTime: g.GetEvaluationTime(),
		LastEvaluation: g.GetLastEvaluation(),
	}
	for _, r := range g.Rules() {
		rs := Rule{
			Name:           r.Name(),
			Query:          r.Query().String(),
			Labels:         r.Labels(),
			Health:         string(r.Health()),
			EvaluationTime: r.GetEvaluationDuration(),
			LastEvaluation: r.GetEvaluationTimestamp(),
		}
		if err := r.LastError(); err != nil {
			rs.LastError = err.Error()
		}
		switch r := r.(type) {
		case *promrules.AlertingRule:
			rs.Type = TypeAlerting
			rs.State = r.State().String()
			rs.Duration = r.HoldDuration()
			rs.KeepFiringFor = r.KeepFiringFor()
			rs.Annotations = r.Annotations()
			rs.Alerts = alertStates(r.ActiveAlerts())
		default:
			rs.Type = TypeRecording
		}
		out.Rules = append(out.Rules, rs)
	}
	return out
}

func alertStates(alerts []*promrules.Alert) []Alert {
	out := make([]Alert, 0, len(alerts))
	for _, a := range alerts {
		out = append(out, Alert{
			Labels:          a.Labels,
			Annotations:     a.Annotations,
			State:           a.State.String(),
			ActiveAt:        a.ActiveAt,
			KeepFiringSince: a.KeepFiringSince,
			Value:           a.Value,
		})
	}
	return out
}

// ActiveAlerts returns the pending and firing alerts. The replica that
// evaluates the rules answers from memory, in rule order; any other from
// the state it shared (Options.States) when every group's is fresh, else
// from the ALERTS and ALERTS_FOR_STATE series the evaluating replica last
// wrote (within the engine's lookback), sorted by labels, without
// annotations (not stored) and with a NaN value (not stored either).
func (m *Manager) ActiveAlerts(ctx context.Context) ([]Alert, error) {
	m.mu.RLock()
	pm, view := m.prom, m.set.view
	m.mu.RUnlock()
	if pm != nil {
		var out []Alert
		for _, r := range pm.AlertingRules() {
			out = append(out, alertStates(r.ActiveAlerts())...)
		}
		return out, nil
	}
	if m.opts.States != nil {
		groups := make([]Group, 0, len(view))
		for _, g := range view {
			groups = append(groups, groupState(g))
		}
		groups, fresh, err := m.sharedGroups(ctx, groups)
		if err != nil {
			return nil, err
		}
		if fresh {
			var out []Alert
			for _, g := range groups {
				for _, r := range g.Rules {
					out = append(out, r.Alerts...)
				}
			}
			return out, nil
		}
	}
	return m.storedAlerts(ctx)
}

// storedAlerts reads the active alerts from the ALERTS series.
func (m *Manager) storedAlerts(ctx context.Context) ([]Alert, error) {
	now := m.opts.Now()
	alerts, err := m.instant(ctx, model.MetricNameLabel+`="ALERTS"`, now)
	if err != nil {
		return nil, err
	}
	forState, err := m.instant(ctx, model.MetricNameLabel+`="ALERTS_FOR_STATE"`, now)
	if err != nil {
		return nil, err
	}
	activeAt := make(map[uint64]time.Time, len(forState))
	for _, s := range forState {
		key := s.Metric.DropReserved(func(n string) bool { return n == model.MetricNameLabel })
		sec, frac := math.Modf(s.F)
		activeAt[key.Hash()] = time.Unix(int64(sec), int64(frac*1e9)).UTC()
	}
	out := make([]Alert, 0, len(alerts))
	for _, s := range alerts {
		b := labels.NewBuilder(s.Metric)
		b.Del(model.MetricNameLabel, alertStateLabel)
		ls := b.Labels()
		out = append(out, Alert{
			Labels:      ls,
			Annotations: labels.EmptyLabels(),
			State:       s.Metric.Get(alertStateLabel),
			ActiveAt:    activeAt[ls.Hash()],
			Value:       math.NaN(),
		})
	}
	slices.SortFunc(out, func(a, b Alert) int {
		return cmp.Or(labels.Compare(a.Labels, b.Labels), cmp.Compare(a.State, b.State))
	})
	return out, nil
}

// instant evaluates {sel} at ts through the engine.
func (m *Manager) instant(ctx context.Context, sel string, ts time.Time) (prom.Vector, error) {
	q, err := m.opts.Engine.InstantQuery(ctx, "{"+sel+"}", ts, promql.QueryOptions{})
	if err != nil {
		return nil, fmt.Errorf("read alerts: %w", err)
	}
	defer q.Close()
	res := q.Exec(ctx)
	if res.Err != nil {
		return nil, fmt.Errorf("read alerts: %w", res.Err)
	}
	v, ok := res.Value.(prom.Vector)
	if !ok {
		return nil, errors.New("read alerts: result is not a vector")
	}
	return v, nil
}

// alertStateLabel is the label of ALERTS holding the alert's state, as
// Prometheus's rules package writes it.
const alertStateLabel = "alertstate"
