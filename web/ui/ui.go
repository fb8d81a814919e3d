package ui

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
)

//go:embed all:dist
var dist embed.FS

// ContentSecurityPolicy is sent with every answer of Handler: scripts and
// styles only from Vigil itself (no inline script, no eval), images also
// as data: URLs, and API and WebSocket connections only to the same origin.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"

// assetCache is the Cache-Control of the content-hashed files under
// /assets/: their names change whenever their content does.
const assetCache = "public, max-age=31536000, immutable"

// Built reports whether the binary embeds a built UI rather than the
// placeholder page.
func Built() bool {
	_, err := fs.Stat(dist, "dist/app/index.html")
	return err == nil
}

// file is one embedded file, ready to serve.
type file struct {
	body  []byte
	gzip  []byte // nil when not worth compressing
	etag  string
	getag string // the ETag of the gzip representation
	ctype string
}

// Handler serves the UI: the files of the build, content-hashed ones under
// /assets/ with a year-long immutable cache, and index.html (not cached)
// for any other path so that client-side routes load the application.
// Paths under /api/ are never answered with the page (404), nor are
// missing assets. Only GET and HEAD are allowed. Every answer carries
// ContentSecurityPolicy and X-Content-Type-Options: nosniff. Files are
// sent gzip-compressed to clients that accept it. Safe for concurrent use.
func Handler() http.Handler {
	root, err := fs.Sub(dist, "dist/app")
	if !Built() || err != nil {
		root, _ = fs.Sub(dist, "dist")
	}
	files := map[string]*file{}
	_ = fs.WalkDir(root, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(root, p)
		if err != nil {
			return err
		}
		files["/"+p] = newFile(p, b)
		return nil
	})
	index := files["/index.html"]
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		p := path.Clean("/" + r.URL.Path)
		if p == "/api" || strings.HasPrefix(p, "/api/") {
			http.NotFound(w, r)
			return
		}
		f, ok := files[p]
		switch {
		case ok && p != "/index.html":
			if strings.HasPrefix(p, "/assets/") {
				h.Set("Cache-Control", assetCache)
			} else {
				h.Set("Cache-Control", "no-cache")
			}
		case strings.HasPrefix(p, "/assets/") || index == nil:
			http.NotFound(w, r)
			return
		default:
			f = index
			h.Set("Cache-Control", "no-cache")
		}
		f.serve(w, r)
	})
}

func newFile(name string, b []byte) *file {
	sum := sha256.Sum256(b)
	f := &file{body: b, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
	f.ctype = mime.TypeByExtension(path.Ext(name))
	if f.ctype == "" {
		f.ctype = http.DetectContentType(b)
	}
	switch path.Ext(name) {
	case ".html", ".js", ".css", ".svg", ".json", ".txt", ".map":
		if len(b) > 512 {
			var buf bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
			_, _ = zw.Write(b)
			_ = zw.Close()
			if buf.Len() < len(b) {
				f.gzip = buf.Bytes()
				f.getag = strings.TrimSuffix(f.etag, `"`) + `-gz"`
			}
		}
	}
	return f
}

func (f *file) serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", f.ctype)
	body, etag := f.body, f.etag
	if f.gzip != nil {
		h.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r.Header.Get("Accept-Encoding")) {
			h.Set("Content-Encoding", "gzip")
			body, etag = f.gzip, f.getag
		}
	}
	h.Set("ETag", etag)
	if match := r.Header.Get("If-None-Match"); match != "" && etagMatch(match, etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// acceptsGzip reports whether an Accept-Encoding value allows gzip (a
// q=0 weight refuses it).
func acceptsGzip(v string) bool {
	for _, part := range strings.Split(v, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
			continue
		}
		q := strings.TrimSpace(params)
		if q, ok := strings.CutPrefix(q, "q="); ok {
			if f, err := strconv.ParseFloat(q, 64); err == nil && f == 0 {
				return false
			}
		}
		return true
	}
	return false
}

func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}
