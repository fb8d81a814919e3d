package promapi

import (
	"net/url"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
)

// FuzzParsePromParams checks that no query string makes the Prometheus API
// parameter parsers panic.
func FuzzParsePromParams(f *testing.F) {
	for _, s := range []string{
		"query=up&start=0&end=100&step=15",
		"query=up&start=2024-01-01T00:00:00Z&end=2024-01-02T00:00:00Z&step=1m",
		"match[]=up{job=~\"a.*\"}&limit=10&start=1e30",
		"query=x&start=NaN&end=Inf&step=-1",
		"match[]={__name__=\"\"}&timeout=5s",
	} {
		f.Add(s)
	}
	p := parser.NewParser(parser.Options{})
	f.Fuzz(func(t *testing.T, raw string) {
		if len(raw) > 4096 {
			return
		}
		form, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		_, _ = parsePromRange(form)
		_, _ = parsePromMatchSets(p, form["match[]"])
		_, _ = parsePromLimit(form)
		_, _ = promTimeParam(form, "start", promMinTime)
		_, _, _ = withTimeout(t.Context(), form)
		_, _ = parsePromLabelName(promFormValue(form, "name"))
	})
}
