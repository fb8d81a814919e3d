package logsapi

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	querylogs "github.com/vigil-obs/vigil/query/logs"
	"github.com/vigil-obs/vigil/storage"
	"github.com/vigil-obs/vigil/web/api"
)

func TestParseTerms(t *testing.T) {
	cases := map[string][]string{
		`timeout`:                      {"timeout"},
		`  a  "b c"  d `:               {"a", "b c", "d"},
		`登录 "connection refused"`:      {"登录", "connection refused"},
		`"" x`:                         {"x"},
		`a"b"`:                         {"a", "b"},
		`"phrase with 中文 inside" tail`: {"phrase with 中文 inside", "tail"},
	}
	for in, want := range cases {
		got, err := parseTerms(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("parseTerms(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestCursorRoundTrip(t *testing.T) {
	c := storage.LogCursor{Time: time.Date(2026, 5, 1, 12, 0, 0, 123456000, time.UTC), ID: -42}
	got, err := decodeCursor(encodeCursor(c))
	if err != nil || !got.Time.Equal(c.Time) || got.ID != c.ID {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
}

// FuzzParseLogQuery: any query string is either refused with a request
// error or parsed into a query within the documented bounds.
func FuzzParseLogQuery(f *testing.F) {
	for _, s := range []string{
		"service=checkout&severity=warn&q=timeout+%22connection+refused%22&limit=50",
		"trace_id=4bf92f3577b34da6a3ce929d0e0e4736&span_id=00f067aa0ba902b7",
		"attr.statusCode=500&attr.method=POST&start=2026-01-01T00:00:00Z&end=1767312000.5",
		"q=%E7%99%BB%E5%BD%95&cursor=djE6MTc2NzIyNTYwMDAwMDAwMDoxMg",
		"q=%22open", "severity=99", "limit=-1", "%zz", "attr.=1", "x=1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if len(raw) > 8192 {
			t.Skip("over the fuzzing size cap")
		}
		q, err := api.ParseQuery(raw)
		if err != nil {
			return
		}
		lq, err := parseLogQuery(q)
		if err != nil {
			var re *api.RequestError
			if !errors.As(err, &re) || !utf8.ValidString(err.Error()) {
				t.Fatalf("error %v is not a valid request error", err)
			}
			return
		}
		if lq.Limit < 0 || lq.Limit > querylogs.MaxLimit || lq.MinSeverity < 0 || lq.MinSeverity > 24 {
			t.Fatalf("out of bounds: %+v", lq)
		}
		if len(lq.Text) > maxLogTerms || len(lq.Attributes) > maxLogAttrs {
			t.Fatalf("too many terms or attributes: %+v", lq)
		}
		for _, term := range lq.Text {
			if strings.TrimSpace(term) == "" {
				t.Fatalf("empty term in %q", lq.Text)
			}
		}
		if !lq.Start.IsZero() && !lq.End.IsZero() && lq.Start.After(lq.End) {
			t.Fatalf("start after end: %+v", lq)
		}
		if lq.After != nil {
			if c, err := decodeCursor(encodeCursor(*lq.After)); err != nil || c.ID != lq.After.ID || !c.Time.Equal(lq.After.Time) {
				t.Fatalf("cursor does not round-trip: %+v", lq.After)
			}
		}
	})
}
