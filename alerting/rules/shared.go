package rules

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	promrules "github.com/prometheus/prometheus/rules"
)

// evaluate is the group iteration the running Prometheus manager calls:
// the evaluation (iterate), then the group's state written for the other
// replicas.
func (m *Manager) evaluate(ctx context.Context, g *promrules.Group, ts time.Time) {
	m.iterate(ctx, g, ts)
	if m.opts.States == nil {
		return
	}
	data, err := json.Marshal(toShared(groupState(g)))
	if err == nil {
		err = m.opts.States.PutRuleGroupState(ctx, g.File(), g.Name(), data)
	}
	if err != nil && ctx.Err() == nil {
		m.logger.WarnContext(ctx, "rule group state not shared with other replicas", "group", g.Name(), "err", err)
	}
}

// sharedGroup is the JSON form of a group's evaluation state; rules are
// in the group's order, named with their query so that a replica with
// other rules loaded does not take their state.
type sharedGroup struct {
	EvaluationTime time.Duration `json:"evaluationTime"`
	LastEvaluation time.Time     `json:"lastEvaluation"`
	Rules          []sharedRule  `json:"rules"`
}

type sharedRule struct {
	Name           string        `json:"name"`
	Query          string        `json:"query"`
	Health         string        `json:"health"`
	LastError      string        `json:"lastError,omitempty"`
	EvaluationTime time.Duration `json:"evaluationTime"`
	LastEvaluation time.Time     `json:"lastEvaluation"`
	State          string        `json:"state,omitempty"`
	Alerts         []sharedAlert `json:"alerts,omitempty"`
}

type sharedAlert struct {
	Labels          labels.Labels `json:"labels"`
	Annotations     labels.Labels `json:"annotations"`
	State           string        `json:"state"`
	ActiveAt        time.Time     `json:"activeAt"`
	KeepFiringSince time.Time     `json:"keepFiringSince"`
	Value           string        `json:"value"` // NaN and ±Inf are not JSON numbers
}

func toShared(g Group) sharedGroup {
	out := sharedGroup{EvaluationTime: g.EvaluationTime, LastEvaluation: g.LastEvaluation, Rules: make([]sharedRule, len(g.Rules))}
	for i, r := range g.Rules {
		sr := sharedRule{Name: r.Name, Query: r.Query, Health: r.Health, LastError: r.LastError,
			EvaluationTime: r.EvaluationTime, LastEvaluation: r.LastEvaluation, State: r.State}
		for _, a := range r.Alerts {
			sr.Alerts = append(sr.Alerts, sharedAlert{Labels: a.Labels, Annotations: a.Annotations, State: a.State,
				ActiveAt: a.ActiveAt, KeepFiringSince: a.KeepFiringSince, Value: strconv.FormatFloat(a.Value, 'g', -1, 64)})
		}
		out.Rules[i] = sr
	}
	return out
}

// applyShared copies a shared state onto g, the group as this replica
// loaded it, rule by rule where name and query agree.
func applyShared(g *Group, sg sharedGroup) {
	g.EvaluationTime, g.LastEvaluation = sg.EvaluationTime, sg.LastEvaluation
	for i := range g.Rules {
		if i >= len(sg.Rules) || sg.Rules[i].Name != g.Rules[i].Name || sg.Rules[i].Query != g.Rules[i].Query {
			continue
		}
		r, sr := &g.Rules[i], sg.Rules[i]
		r.Health, r.LastError, r.EvaluationTime, r.LastEvaluation = sr.Health, sr.LastError, sr.EvaluationTime, sr.LastEvaluation
		if r.Type != TypeAlerting {
			continue
		}
		r.State = sr.State
		r.Alerts = make([]Alert, 0, len(sr.Alerts))
		for _, a := range sr.Alerts {
			v, err := strconv.ParseFloat(a.Value, 64)
			if err != nil {
				v = math.NaN()
			}
			r.Alerts = append(r.Alerts, Alert{Labels: a.Labels, Annotations: a.Annotations, State: a.State,
				ActiveAt: a.ActiveAt, KeepFiringSince: a.KeepFiringSince, Value: v})
		}
	}
}

// sharedGroups returns the loaded groups with the state the evaluating
// replica shared, and whether every group had a state written within
// three of its intervals (else the evaluating replica may be gone, and
// its alerts are not to be trusted).
func (m *Manager) sharedGroups(ctx context.Context, groups []Group) ([]Group, bool, error) {
	states, err := m.opts.States.RuleGroupStates(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("rule groups: %w", err)
	}
	type key struct{ file, group string }
	byKey := make(map[key]int, len(states))
	for i, st := range states {
		byKey[key{st.File, st.Group}] = i
	}
	fresh := true
	now := m.opts.Now()
	for i := range groups {
		g := &groups[i]
		j, ok := byKey[key{g.File, g.Name}]
		if !ok || now.Sub(states[j].Updated) > 3*g.Interval+10*time.Second {
			fresh = false
		}
		if !ok {
			continue
		}
		var sg sharedGroup
		if err := json.Unmarshal(states[j].State, &sg); err != nil {
			m.logger.WarnContext(ctx, "shared rule group state unreadable", "group", g.Name, "err", err)
			fresh = false
			continue
		}
		applyShared(g, sg)
	}
	return groups, fresh, nil
}
