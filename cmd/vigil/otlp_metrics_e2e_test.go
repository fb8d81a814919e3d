package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"

	"github.com/vigil-obs/vigil/internal/pgtest"
)

// TestOTLPMetricsSDK sends metrics with the OTel Go SDK over OTLP/gRPC
// and OTLP/HTTP and reads them back through the Prometheus API under
// Prometheus's own OTLP names.
func TestOTLPMetricsSDK(t *testing.T) {
	for _, transport := range []string{"grpc", "http"} {
		t.Run(transport, func(t *testing.T) { testOTLPMetricsSDK(t, transport) })
	}
}

func testOTLPMetricsSDK(t *testing.T, transport string) {
	ts := startServer(t, pgtest.NewDatabase(t))
	ctx := context.Background()
	var (
		exp sdkmetric.Exporter
		err error
	)
	if transport == "grpc" {
		exp, err = otlpmetricgrpc.New(ctx, otlpmetricgrpc.WithEndpoint(ts.grpcAddr), otlpmetricgrpc.WithInsecure())
	} else {
		exp, err = otlpmetrichttp.New(ctx, otlpmetrichttp.WithEndpoint(ts.otlpHTTP), otlpmetrichttp.WithInsecure())
	}
	if err != nil {
		t.Fatal(err)
	}
	mp := sdkmetric.NewMeterProvider(
		sdkmetric.WithResource(resource.NewSchemaless(semconv.ServiceName("user-service"))),
		sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp, sdkmetric.WithInterval(time.Hour))))
	defer func() { _ = mp.Shutdown(ctx) }()
	meter := mp.Meter("test")
	calls, _ := meter.Int64Counter("demo.calls")
	dur, _ := meter.Float64Histogram("http.server.request.duration", metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.1, 0.5, 1))
	for i := 0; i < 7; i++ {
		calls.Add(ctx, 1, metric.WithAttributes(attribute.String("status_code", "500")))
		dur.Record(ctx, 0.3)
	}
	if err := mp.ForceFlush(ctx); err != nil {
		t.Fatalf("export metrics: %v", err)
	}

	query := func(expr string) string {
		q := url.Values{"query": {expr}}
		resp, err := http.Get(ts.httpURL + "/api/v1/query?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct {
			Status string `json:"status"`
			Data   struct {
				Result []struct {
					Value [2]any `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		if err := decodeJSON(resp.Body, &body); err != nil {
			t.Fatal(err)
		}
		if body.Status != "success" || len(body.Data.Result) != 1 {
			t.Fatalf("%s: %+v", expr, body)
		}
		return body.Data.Result[0].Value[1].(string)
	}
	if v := query(`sum(demo_calls_total{job="user-service",status_code="500"})`); v != "7" {
		t.Errorf("demo_calls_total = %s, want 7", v)
	}
	if v := query(`sum(http_server_request_duration_seconds_bucket{le="0.5"})`); v != "7" {
		t.Errorf("bucket le=0.5 = %s, want 7", v)
	}
	if v := query(`sum(http_server_request_duration_seconds_count)`); v != "7" {
		t.Errorf("_count = %s, want 7", v)
	}
}

// TestOTLPDeltaMetricsSDK exports with delta temporality: Vigil accumulates
// the deltas into the cumulative series Prometheus expects.
func TestOTLPDeltaMetricsSDK(t *testing.T) {
	ts := startServer(t, pgtest.NewDatabase(t))
	ctx := context.Background()
	exp, err := otlpmetricgrpc.New(ctx, otlpmetricgrpc.WithEndpoint(ts.grpcAddr), otlpmetricgrpc.WithInsecure(),
		otlpmetricgrpc.WithTemporalitySelector(sdkmetric.DeltaTemporalitySelector))
	if err != nil {
		t.Fatal(err)
	}
	mp := sdkmetric.NewMeterProvider(
		sdkmetric.WithResource(resource.NewSchemaless(semconv.ServiceName("delta-service"))),
		sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp, sdkmetric.WithInterval(time.Hour))))
	defer func() { _ = mp.Shutdown(ctx) }()
	meter := mp.Meter("test")
	calls, _ := meter.Int64Counter("delta.calls")
	dur, _ := meter.Float64Histogram("delta.duration", metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(0.1, 1))
	for round, n := range []int{3, 4, 5} {
		for range n {
			calls.Add(ctx, 1)
			dur.Record(ctx, 0.5)
		}
		if err := mp.ForceFlush(ctx); err != nil {
			t.Fatalf("export round %d: %v", round, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var body struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Values [][2]any `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	now := time.Now()
	q := url.Values{"query": {`delta_calls_total[1m]`}, "time": {fmt.Sprint(now.Unix() + 1)}}
	resp, err := http.Get(ts.httpURL + "/api/v1/query?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := decodeJSON(resp.Body, &body); err != nil || body.Status != "success" || len(body.Data.Result) != 1 {
		t.Fatalf("query: %v %+v", err, body)
	}
	var got []string
	for _, v := range body.Data.Result[0].Values {
		got = append(got, v[1].(string))
	}
	if strings.Join(got, ",") != "3,7,12" {
		t.Errorf("delta_calls_total samples %v, want the running totals 3,7,12", got)
	}
	q = url.Values{"query": {`delta_duration_seconds_bucket{le="1"}`}, "time": {fmt.Sprint(now.Unix() + 1)}}
	resp2, err := http.Get(ts.httpURL + "/api/v1/query?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	var inst struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := decodeJSON(resp2.Body, &inst); err != nil || len(inst.Data.Result) != 1 || inst.Data.Result[0].Value[1] != "12" {
		t.Errorf("bucket le=1: %v %+v, want 12", err, inst)
	}
}
