package web

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/vigil-obs/vigil/internal/tail"
	"github.com/vigil-obs/vigil/storage"
	"github.com/vigil-obs/vigil/web/api/logsapi"
)

// slowAPI has a route that reads the whole body and then works for a
// while, failing if its request's context ends meanwhile.
type slowAPI struct{ work time.Duration }

func (a slowAPI) Register(mux *http.ServeMux) {
	h := func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
			return
		}
		select {
		case <-time.After(a.work):
		case <-r.Context().Done():
			http.Error(w, "context ended: "+context.Cause(r.Context()).Error(), http.StatusInternalServerError)
			return
		}
		_, _ = fmt.Fprintf(w, "read %d bytes", len(body))
	}
	mux.HandleFunc("POST /api/slow", h)
	mux.HandleFunc("GET /api/slow", h)
}

func serve(t *testing.T, cfg Config, apis ...Mounter) string {
	t.Helper()
	s, err := New("127.0.0.1:0", Options{Config: cfg, APIs: apis})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	return s.Addr()
}

// TestBodyReadTimeout: a client trickling its body is cut off once
// ReadTimeout has passed, however steadily it trickles.
func TestBodyReadTimeout(t *testing.T) {
	addr := serve(t, Config{ReadTimeout: 200 * time.Millisecond}, slowAPI{})
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _ = io.WriteString(conn, "POST /api/slow HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n")
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := conn.Write([]byte("x")); err != nil {
					return
				}
			}
		}
	}()
	start := time.Now()
	_ = conn.SetReadDeadline(start.Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a trickled body: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "timeout") {
		t.Fatalf("trickled body: %d %q", resp.StatusCode, body)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("trickled body held the handler for %v", took)
	}
}

// TestLongRequestsOutliveReadTimeout: once the body is read (or when
// there is none), a handler may work past ReadTimeout without its
// context being cancelled, as a long query must.
func TestLongRequestsOutliveReadTimeout(t *testing.T) {
	addr := serve(t, Config{ReadTimeout: 100 * time.Millisecond}, slowAPI{work: 400 * time.Millisecond})
	for _, tc := range []struct {
		name, method, body string
	}{
		{"get", http.MethodGet, ""},
		{"post", http.MethodPost, "query=up"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, "http://"+addr+"/api/slow", strings.NewReader(tc.body))
			if tc.body == "" {
				req.Body = http.NoBody
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if want := fmt.Sprintf("read %d bytes", len(tc.body)); resp.StatusCode != http.StatusOK || string(body) != want {
				t.Fatalf("%d %q, want 200 %q", resp.StatusCode, body, want)
			}
			if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Fatalf("X-Content-Type-Options %q", got)
			}
		})
	}
}

// TestAPIBodyLimit: bodies of API requests are bounded by MaxBodyBytes.
func TestAPIBodyLimit(t *testing.T) {
	addr := serve(t, Config{MaxBodyBytes: 1024}, slowAPI{})
	for _, tc := range []struct {
		size   int
		status int
	}{{1024, http.StatusOK}, {1025, http.StatusBadRequest}} {
		resp, err := http.Post("http://"+addr+"/api/slow", "text/plain", strings.NewReader(strings.Repeat("x", tc.size)))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Fatalf("%d-byte body: %d %q, want %d", tc.size, resp.StatusCode, body, tc.status)
		}
	}
}

// noLogs is a log reader with nothing stored: the live tail does not read.
type noLogs struct{}

func (noLogs) FindLogs(context.Context, storage.LogQuery) (storage.LogPage, error) {
	return storage.LogPage{}, nil
}

func (noLogs) LogHistogram(context.Context, storage.LogQuery, int) ([]storage.LogBucket, time.Duration, bool, error) {
	return nil, 0, false, nil
}

func (noLogs) TraceLogs(context.Context, pcommon.TraceID) ([]storage.LogRecord, error) {
	return nil, nil
}

// TestTailOutlivesServerTimeouts: the live tail's WebSocket keeps
// streaming long after the server's read and write timeouts, which bound
// HTTP requests, not hijacked connections.
func TestTailOutlivesServerTimeouts(t *testing.T) {
	hub := tail.New[storage.LogRecord](tail.Config{})
	defer hub.Close()
	const short = 100 * time.Millisecond
	addr := serve(t, Config{ReadTimeout: short, WriteTimeout: short, IdleTimeout: short},
		logsapi.New(noLogs{}, logsapi.Options{Tail: hub}))
	conn, resp, err := websocket.DefaultDialer.Dial("ws://"+addr+"/api/logs/tail", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	resp.Body.Close()
	defer conn.Close()
	for i := range 3 {
		time.Sleep(2 * short)
		lr := plog.NewLogRecord()
		lr.Body().SetStr(fmt.Sprint("record ", i))
		hub.Publish([]storage.LogRecord{{Service: "s", Resource: pcommon.NewResource(), Scope: pcommon.NewInstrumentationScope(), Record: lr}})
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, msg, err := conn.ReadMessage()
		if err != nil || !strings.Contains(string(msg), fmt.Sprint("record ", i)) {
			t.Fatalf("after %v: %q, %v", time.Duration(i+1)*2*short, msg, err)
		}
	}
}
