package jaegerapi

import (
	"net/http"
	"testing"
)

// FuzzMonitorParams sends arbitrary query strings to the dependency and
// Monitor routes: every answer must be 200 or 400, never a panic.
func FuzzMonitorParams(f *testing.F) {
	for _, seed := range []string{
		"", "service=a", "service=a&quantile=0.95", "service=a&spanKind=client&spanKind=x", "endTs=-1", "endTs=99999999999999999999",
		"lookback=0", "step=1&ratePer=1", "groupByOperation=T", "service=a&step=9223372036854775807", "%zz",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if len(raw) > 4096 {
			return
		}
		for _, path := range []string{"/api/dependencies", "/api/metrics/calls", "/api/metrics/errors", "/api/metrics/latencies", "/api/metrics/minstep"} {
			rec := serveMap(t, &fakeMap{}, path+"?"+raw)
			if rec.Code != http.StatusOK && rec.Code != http.StatusBadRequest {
				t.Errorf("%s?%s: status %d: %s", path, raw, rec.Code, rec.Body)
			}
		}
	})
}
