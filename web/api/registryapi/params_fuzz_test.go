package registryapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
)

// FuzzParams sends arbitrary check IDs and query strings to both routes:
// every answer must be 200, 400 or 404 (the source never fails here) in
// the envelope, never a panic.
func FuzzParams(f *testing.F) {
	for _, seed := range []struct{ id, raw string }{
		{"service:checkout-2", ""}, {"payments-ttl", "limit=5"}, {"x", "limit=0"}, {"x", "limit=1001"},
		{"x", "limit=-1"}, {"x", "limit=1&limit=2"}, {"a/b", "prettyPrint=true"}, {"\x00", ""}, {"\xff", "%zz"},
		{"_service_maintenance:checkout-2", "other=1"},
	} {
		f.Add(seed.id, seed.raw)
	}
	mux := http.NewServeMux()
	New(&fakeSource{history: checkoutHistory}, nil).Register(mux)
	f.Fuzz(func(t *testing.T, id, raw string) {
		if len(id)+len(raw) > 8192 || id == "" {
			return
		}
		for _, path := range []string{PathRegistry, "/api/vigil/registry/checks/" + url.PathEscape(id) + "/history"} {
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			req.URL.Path, req.URL.RawPath, req.URL.RawQuery = "", path, raw
			if p, err := url.PathUnescape(path); err == nil {
				req.URL.Path = p
			}
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, req)
			if rec.Header().Get("Content-Type") != "application/json" {
				// The mux answered before the handler: it cleans paths
				// (a check "." or ".." is redirected) and does not route
				// some IDs of escaped slashes ("/"). Nothing else may.
				if rec.Code != http.StatusNotFound && rec.Code != http.StatusTemporaryRedirect && rec.Code != http.StatusMovedPermanently {
					t.Fatalf("%s?%s: status %d from the mux: %s", path, raw, rec.Code, rec.Body)
				}
				continue
			}
			switch rec.Code {
			case http.StatusOK, http.StatusBadRequest, http.StatusNotFound:
			default:
				t.Fatalf("%s?%s: status %d: %s", path, raw, rec.Code, rec.Body)
			}
			var env struct {
				Data   json.RawMessage        `json:"data"`
				Errors []struct{ Msg string } `json:"errors"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil {
				t.Fatalf("%s?%s: not the envelope: %v: %s", path, raw, err, rec.Body)
			}
			if (rec.Code == http.StatusOK) == (len(env.Errors) > 0) {
				t.Fatalf("%s?%s: status %d with errors %v", path, raw, rec.Code, env.Errors)
			}
		}
	})
}
