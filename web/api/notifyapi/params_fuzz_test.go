package notifyapi

import (
	"net/http"
	"net/url"
	"testing"
	"unicode/utf8"
)

// FuzzHistoryQuery checks that no query string makes the history
// parameters panic, and that what is accepted is within bounds.
func FuzzHistoryQuery(f *testing.F) {
	for _, s := range []string{
		"", "receiver=team&limit=10", "limit=0", "limit=1001", "before=2026-01-02T03:04:05Z",
		"before=1700000000.5", "before=NaN", "before=-1e300", "receiver=%00", "receiver=%FF", "a%FF=b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if len(raw) > 1<<16 {
			return
		}
		r := &http.Request{URL: &url.URL{RawQuery: raw}}
		q, err := parseHistoryQuery(r)
		if err != nil {
			if _, ok := err.(*paramError); !ok { //nolint:errorlint // the parser returns it unwrapped
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		if q.Limit < 1 || q.Limit > MaxLimit || !utf8.ValidString(q.Receiver) {
			t.Fatalf("accepted %+v", q)
		}
		if y := q.Before.Year(); !q.Before.IsZero() && (y < 1 || y > 9999) {
			t.Fatalf("before out of range: %s", q.Before)
		}
	})
}
