package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"

	"github.com/vigil-obs/vigil/internal/pgmanaged"
)

// pgDataDir returns a temporary directory the unprivileged postgres
// account can traverse (t.TempDir is 0700).
func pgDataDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for d := dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// metricValue reads one sample of Vigil's own /metrics.
func metricValue(t *testing.T, base, series string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("metric %s not found", series)
	return 0
}

// TestPostgresOutageLosesNothing stops Postgres while an OTel SDK exports
// and starts it again: the SDK's retries must deliver every span, and
// every span Vigil acknowledged must be in the database.
func TestPostgresOutageLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and restarts a PostgreSQL server")
	}
	ctx := context.Background()
	dir := pgDataDir(t)
	inst, err := pgmanaged.Start(ctx, pgmanaged.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = inst.Stop(context.Background()) }()
	dbURL := inst.URL()

	ts := startServer(t, dbURL)
	exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(ts.grpcAddr), otlptracegrpc.WithInsecure(),
		otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: true, InitialInterval: 50 * time.Millisecond,
			MaxInterval: 500 * time.Millisecond, MaxElapsedTime: 2 * time.Minute}))
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithResource(resource.NewSchemaless(semconv.ServiceName("outage"))),
		sdktrace.WithBatcher(exp, sdktrace.WithMaxQueueSize(1<<20), sdktrace.WithMaxExportBatchSize(100),
			sdktrace.WithBatchTimeout(20*time.Millisecond), sdktrace.WithBlocking()))
	tracer := tp.Tracer("outage")

	generated := 0
	stopGen := make(chan struct{})
	genDone := make(chan struct{})
	go func() {
		defer close(genDone)
		for {
			select {
			case <-stopGen:
				return
			default:
			}
			for i := 0; i < 20; i++ {
				_, sp := tracer.Start(ctx, "tick")
				sp.SetAttributes(attribute.Int("seq", generated))
				sp.End()
				generated++
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()

	time.Sleep(time.Second)
	if err := inst.Stop(ctx); err != nil {
		t.Fatalf("stop postgres: %v", err)
	}
	time.Sleep(2 * time.Second)
	// The socket lives in the data directory, so the URL stays the same.
	inst, err = pgmanaged.Start(ctx, pgmanaged.Config{DataDir: dir})
	if err != nil {
		t.Fatalf("restart postgres: %v", err)
	}
	time.Sleep(time.Second)
	close(stopGen)
	<-genDone
	fctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := tp.ForceFlush(fctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
	if err := tp.Shutdown(fctx); err != nil {
		t.Fatalf("shutdown sdk: %v", err)
	}

	acked := metricValue(t, ts.httpURL, `vigil_ingest_spans_stored_total{protocol="otlp_grpc"}`)
	failed := metricValue(t, ts.httpURL, `vigil_pipeline_batch_errors_total{signal="traces"}`)
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var rows, distinct int
	if err := conn.QueryRow(ctx, "SELECT count(*), count(DISTINCT span_id) FROM spans").Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	t.Logf("generated %d spans, acknowledged %.0f, %d rows (%d distinct), %.0f failed batches", generated, acked, rows, distinct, failed)
	if failed == 0 {
		t.Error("no batch failed: the outage did not hit the pipeline")
	}
	if distinct != generated {
		t.Errorf("stored %d distinct spans, generated %d", distinct, generated)
	}
	if float64(rows) < acked {
		t.Errorf("acknowledged %.0f spans but only %d rows are stored", acked, rows)
	}
}

// TestManagedPostgresBinary runs the real binary without --db: it must
// start its own Postgres, become ready, store a span, and leave no
// Postgres process behind after SIGTERM.
func TestManagedPostgresBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and starts PostgreSQL")
	}
	dir := pgDataDir(t)
	bin := filepath.Join(dir, "vigil")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "serve", "--data-dir", filepath.Join(dir, "data"),
		"--http", "127.0.0.1:0", "--otlp-grpc", "", "--otlp-http", "127.0.0.1:0", "--log-format", "json",
		"--jaeger-udp-compact=", "--jaeger-udp-binary=", "--jaeger-http=", "--jaeger-grpc=", "--zipkin=", "--consul-api=")
	cmd.Env = append(os.Environ(), "VIGIL_DB=")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()

	// The "serving" log line carries the bound addresses.
	addrs := make(chan [2]string, 1)
	logTail := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		var all strings.Builder
		re := regexp.MustCompile(`"msg":"serving","http":"([^"]+)".*"otlp_http":"([^"]+)"`)
		for sc.Scan() {
			all.WriteString(sc.Text() + "\n")
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addrs <- [2]string{m[1], m[2]}
			}
		}
		logTail <- all.String()
	}()
	var httpAddr, otlpAddr string
	select {
	case a := <-addrs:
		httpAddr, otlpAddr = a[0], a[1]
	case <-time.After(90 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("vigil did not start:\n%s", <-logTail)
	}
	base := "http://" + httpAddr
	resp, err := http.Get(base + "/readyz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("readyz: %v %v", resp, err)
	}
	resp.Body.Close()

	traceID := "5b8efff798038103d269b633813fc60c"
	body := fmt.Sprintf(`{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"managed"}}]},
		"scopeSpans":[{"spans":[{"traceId":%q,"spanId":"eee19b7ec3c1b174","name":"hello","kind":2,
		"startTimeUnixNano":"%d","endTimeUnixNano":"%d"}]}]}]}`, traceID, time.Now().UnixNano(), time.Now().Add(time.Millisecond).UnixNano())
	resp, err = http.Post("http://"+otlpAddr+"/v1/traces", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("export: %d %s", resp.StatusCode, b)
	}
	got, code := getJSON[jaegerResponse[[]jTrace]](t, base+"/api/traces/"+traceID)
	if code != 200 || len(got.Data) != 1 || len(got.Data[0].Spans) != 1 {
		t.Fatalf("trace: %d %+v", code, got)
	}

	pidFile := filepath.Join(dir, "data", "postgres", "postmaster.pid")
	pidBytes, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("read %s: %v", pidFile, err)
	}
	pgPid, _ := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(pidBytes), "\n", 2)[0]))

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait() }()
	select {
	case err := <-waitErr:
		if err != nil {
			t.Fatalf("vigil exited with %v:\n%s", err, <-logTail)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("vigil did not exit after SIGTERM")
	}
	if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
		t.Errorf("postmaster.pid still present after exit (err %v)", err)
	}
	if pgPid > 0 && syscall.Kill(pgPid, 0) == nil {
		t.Errorf("postgres process %d still alive after vigil exited", pgPid)
	}
}
