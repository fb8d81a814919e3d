package servicemap_test

import (
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

func labelsMatcher(t testing.TB, sel string) []*labels.Matcher {
	t.Helper()
	ms, err := parser.NewParser(parser.Options{}).ParseMetricSelector(sel)
	if err != nil {
		t.Fatalf("parse %s: %v", sel, err)
	}
	return ms
}

func joinLines(ss []string) string { return strings.Join(ss, "\n") }
