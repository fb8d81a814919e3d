package ui

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, method, path string, header http.Header) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, path, nil)
	for k, v := range header {
		r.Header[k] = v
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestHandler(t *testing.T) {
	h := Handler()
	index := get(t, h, http.MethodGet, "/", nil)
	if index.Code != http.StatusOK || !strings.HasPrefix(index.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %q", index.Code, index.Header().Get("Content-Type"))
	}
	tests := []struct {
		name   string
		method string
		path   string
		status int
		index  bool // answered with index.html
	}{
		{"root", http.MethodGet, "/", http.StatusOK, true},
		{"client route", http.MethodGet, "/traces?service=checkout", http.StatusOK, true},
		{"deep client route", http.MethodGet, "/trace/5b8efff798038103d269b633813fc60c", http.StatusOK, true},
		{"head", http.MethodHead, "/logs", http.StatusOK, false},
		{"api path", http.MethodGet, "/api/services", http.StatusNotFound, false},
		{"api root", http.MethodGet, "/api", http.StatusNotFound, false},
		{"missing asset", http.MethodGet, "/assets/nope-123.js", http.StatusNotFound, false},
		{"post", http.MethodPost, "/", http.StatusMethodNotAllowed, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := get(t, h, tc.method, tc.path, nil)
			if w.Code != tc.status {
				t.Fatalf("%s %s: %d, want %d", tc.method, tc.path, w.Code, tc.status)
			}
			if got := w.Header().Get("Content-Security-Policy"); got != ContentSecurityPolicy {
				t.Errorf("CSP %q", got)
			}
			if w.Header().Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("no nosniff")
			}
			if tc.index && !bytes.Equal(w.Body.Bytes(), index.Body.Bytes()) {
				t.Errorf("%s: not index.html", tc.path)
			}
			if tc.index && w.Header().Get("Cache-Control") != "no-cache" {
				t.Errorf("index Cache-Control %q", w.Header().Get("Cache-Control"))
			}
		})
	}
	if !strings.Contains(ContentSecurityPolicy, "script-src 'self';") || strings.Contains(ContentSecurityPolicy, "unsafe-inline") {
		t.Errorf("CSP allows inline script: %s", ContentSecurityPolicy)
	}
	if bytes.Contains(index.Body.Bytes(), []byte("<script>")) {
		t.Errorf("index.html holds an inline script")
	}
}

func TestHandlerAssets(t *testing.T) {
	if !Built() {
		t.Skip("the UI is not built (make ui); only the placeholder is embedded")
	}
	h := Handler()
	index := get(t, h, http.MethodGet, "/", nil).Body.String()
	m := regexp.MustCompile(`src="(/assets/[^"]+\.js)"`).FindStringSubmatch(index)
	if m == nil {
		t.Fatalf("no script in index.html: %s", index)
	}
	plain := get(t, h, http.MethodGet, m[1], nil)
	if plain.Code != http.StatusOK || plain.Header().Get("Cache-Control") != assetCache ||
		!strings.Contains(plain.Header().Get("Content-Type"), "javascript") {
		t.Fatalf("GET %s: %d %v", m[1], plain.Code, plain.Header())
	}
	gz := get(t, h, http.MethodGet, m[1], http.Header{"Accept-Encoding": {"br, gzip;q=0.8"}})
	if gz.Header().Get("Content-Encoding") != "gzip" || gz.Header().Get("ETag") == plain.Header().Get("ETag") {
		t.Fatalf("gzip: %v", gz.Header())
	}
	zr, err := gzip.NewReader(gz.Body)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(body, plain.Body.Bytes()) {
		t.Fatalf("gzip body differs (%v)", err)
	}
	if w := get(t, h, http.MethodGet, m[1], http.Header{"Accept-Encoding": {"gzip;q=0"}}); w.Header().Get("Content-Encoding") != "" {
		t.Errorf("gzip;q=0 still compressed")
	}
	cached := get(t, h, http.MethodGet, m[1], http.Header{"If-None-Match": {plain.Header().Get("ETag")}})
	if cached.Code != http.StatusNotModified {
		t.Errorf("If-None-Match: %d", cached.Code)
	}
}
