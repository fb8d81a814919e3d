package alertstore

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/vigil-obs/vigil/storage"
	"github.com/vigil-obs/vigil/storage/postgres/internal/pgcore"
)

// PutRuleGroupState stores the evaluation state of one rule group (JSON),
// replacing the previous one.
func (s *Store) PutRuleGroupState(ctx context.Context, file, group string, state []byte) error {
	if _, err := s.pool.Exec(ctx, upsertRuleGroupStateSQL, file, group, state); err != nil {
		return fmt.Errorf("store state of rule group %q: %w", group, pgcore.Classify(err))
	}
	return nil
}

// RuleGroupStates returns the stored state of every rule group.
func (s *Store) RuleGroupStates(ctx context.Context) ([]storage.RuleGroupState, error) {
	rows, err := s.pool.Query(ctx, ruleGroupStatesSQL)
	if err != nil {
		return nil, fmt.Errorf("read rule group states: %w", pgcore.Classify(err))
	}
	var out []storage.RuleGroupState
	var g storage.RuleGroupState
	_, err = pgx.ForEachRow(rows, []any{&g.File, &g.Group, &g.State, &g.Updated}, func() error {
		out = append(out, g)
		g.State = nil
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read rule group states: %w", pgcore.Classify(err))
	}
	return out, nil
}
