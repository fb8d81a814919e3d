package otelsetup

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploggrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// Config says where to export and who is exporting.
type Config struct {
	// Endpoint is Vigil's OTLP gRPC address (default 127.0.0.1:4317).
	Endpoint string `yaml:"endpoint"`
	// TLS selects TLS with the system roots; the default is plaintext, as
	// for a Vigil on loopback or inside a private network.
	TLS bool `yaml:"tls"`
	// Headers are sent with every export (e.g. an authorization token).
	Headers map[string]string `yaml:"headers"`
	// ServiceName is the resource's service.name. Required.
	ServiceName string `yaml:"service_name"`
	// ServiceVersion is service.version.
	ServiceVersion string `yaml:"service_version"`
	// InstanceID is service.instance.id (default: none).
	InstanceID string `yaml:"instance_id"`
	// Attributes are extra resource attributes.
	Attributes map[string]string `yaml:"attributes"`
	// MetricInterval is the metric export period (default 10s).
	MetricInterval time.Duration `yaml:"metric_interval"`
	// Timeout bounds one export (default 10s).
	Timeout time.Duration `yaml:"timeout"`
}

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Endpoint == "" {
		c.Endpoint = "127.0.0.1:4317"
	}
	if c.MetricInterval == 0 {
		c.MetricInterval = 10 * time.Second
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	return c
}

// Validate reports the first invalid field after defaults are applied.
func (c Config) Validate() error {
	c = c.WithDefaults()
	switch {
	case c.ServiceName == "":
		return errors.New("service_name: required")
	case c.MetricInterval < 0:
		return fmt.Errorf("metric_interval: must be positive, got %v", c.MetricInterval)
	case c.Timeout < 0:
		return fmt.Errorf("timeout: must be positive, got %v", c.Timeout)
	}
	return nil
}

// Options carries optional dependencies.
type Options struct {
	// Conn, if set, is used for all three exporters instead of a
	// connection of their own; Shutdown does not close it. Several
	// Providers (one per service of a demo) can share one.
	Conn *grpc.ClientConn
}

// Providers holds the SDK providers of one service. Pass them to the client
// (Options.TracerProvider, Options.MeterProvider) and to NewSlogHandler.
type Providers struct {
	// TracerProvider batches spans to Vigil.
	TracerProvider *sdktrace.TracerProvider
	// MeterProvider exports metrics every MetricInterval.
	MeterProvider *sdkmetric.MeterProvider
	// LoggerProvider batches log records to Vigil.
	LoggerProvider *sdklog.LoggerProvider
	conn           *grpc.ClientConn // owned, closed by Shutdown
}

// Dial opens the gRPC connection exporters use; it connects lazily.
func Dial(cfg Config) (*grpc.ClientConn, error) {
	cfg = cfg.WithDefaults()
	creds := insecure.NewCredentials()
	if cfg.TLS {
		creds = credentials.NewClientTLSFromCert(nil, "")
	}
	conn, err := grpc.NewClient(cfg.Endpoint, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, fmt.Errorf("dial otlp %s: %w", cfg.Endpoint, err)
	}
	return conn, nil
}

// Start builds the providers. Exports happen in the background; an
// unreachable Vigil costs dropped batches, never blocked callers. Call
// Shutdown to flush.
func Start(ctx context.Context, cfg Config, opts Options) (*Providers, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("otel config: %w", err)
	}
	cfg = cfg.WithDefaults()
	p := &Providers{}
	conn := opts.Conn
	if conn == nil {
		var err error
		if conn, err = Dial(cfg); err != nil {
			return nil, err
		}
		p.conn = conn
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", cfg.ServiceName)}
	if cfg.ServiceVersion != "" {
		attrs = append(attrs, attribute.String("service.version", cfg.ServiceVersion))
	}
	if cfg.InstanceID != "" {
		attrs = append(attrs, attribute.String("service.instance.id", cfg.InstanceID))
	}
	for k, v := range cfg.Attributes {
		attrs = append(attrs, attribute.String(k, v))
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attrs...))
	if err != nil {
		return nil, errors.Join(fmt.Errorf("otel resource: %w", err), p.closeConn())
	}
	traceExp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithGRPCConn(conn), otlptracegrpc.WithHeaders(cfg.Headers), otlptracegrpc.WithTimeout(cfg.Timeout))
	if err != nil {
		return nil, errors.Join(fmt.Errorf("otlp trace exporter: %w", err), p.closeConn())
	}
	metricExp, err := otlpmetricgrpc.New(ctx, otlpmetricgrpc.WithGRPCConn(conn), otlpmetricgrpc.WithHeaders(cfg.Headers), otlpmetricgrpc.WithTimeout(cfg.Timeout))
	if err != nil {
		return nil, errors.Join(fmt.Errorf("otlp metric exporter: %w", err), traceExp.Shutdown(ctx), p.closeConn())
	}
	logExp, err := otlploggrpc.New(ctx, otlploggrpc.WithGRPCConn(conn), otlploggrpc.WithHeaders(cfg.Headers), otlploggrpc.WithTimeout(cfg.Timeout))
	if err != nil {
		return nil, errors.Join(fmt.Errorf("otlp log exporter: %w", err), traceExp.Shutdown(ctx), metricExp.Shutdown(ctx), p.closeConn())
	}
	p.TracerProvider = sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithBatcher(traceExp))
	p.MeterProvider = sdkmetric.NewMeterProvider(sdkmetric.WithResource(res),
		sdkmetric.WithReader(sdkmetric.NewPeriodicReader(metricExp, sdkmetric.WithInterval(cfg.MetricInterval))))
	p.LoggerProvider = sdklog.NewLoggerProvider(sdklog.WithResource(res), sdklog.WithProcessor(sdklog.NewBatchProcessor(logExp)))
	return p, nil
}

func (p *Providers) closeConn() error {
	if p.conn == nil {
		return nil
	}
	err := p.conn.Close()
	p.conn = nil
	return err
}

// ForceFlush exports everything buffered so far.
func (p *Providers) ForceFlush(ctx context.Context) error {
	return errors.Join(p.TracerProvider.ForceFlush(ctx), p.MeterProvider.ForceFlush(ctx), p.LoggerProvider.ForceFlush(ctx))
}

// Shutdown flushes and stops the providers, then closes the connection if
// Start opened it. It returns every error met.
func (p *Providers) Shutdown(ctx context.Context) error {
	return errors.Join(
		p.TracerProvider.Shutdown(ctx),
		p.MeterProvider.Shutdown(ctx),
		p.LoggerProvider.Shutdown(ctx),
		p.closeConn(),
	)
}
