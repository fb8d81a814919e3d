package mapapi

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// FuzzMapParams sends arbitrary query strings to both routes: every
// answer must be 200 or 400 (the reader never fails here), never a panic.
func FuzzMapParams(f *testing.F) {
	for _, seed := range []string{
		"", "start=1&end=2", "start=2026-03-04T09:00:00Z", "start=1772614800000", "attr.deployment.environment=prod",
		"attr.=x", "attr.host.name=x", "limit=5&client=a&server=b", "limit=-1", "start=NaN", "end=1e300", "%zz", "start=1&start=2",
	} {
		f.Add(seed)
	}
	mux := http.NewServeMux()
	New(&fakeReader{}, nil).Register(mux)
	f.Fuzz(func(t *testing.T, raw string) {
		if len(raw) > 4096 {
			return
		}
		for _, path := range []string{"/api/vigil/servicemap", "/api/vigil/servicemap/traces"} {
			req := httptest.NewRequest(http.MethodGet, path, nil)
			req.URL.RawQuery = raw
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK && rec.Code != http.StatusBadRequest {
				t.Errorf("%s?%s: status %d: %s", path, raw, rec.Code, rec.Body)
			}
		}
	})
}
