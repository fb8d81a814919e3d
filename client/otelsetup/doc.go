// Package otelsetup wires OpenTelemetry traces, metrics and logs to Vigil
// over OTLP gRPC, for services built on the reference client.
//
// Start builds the three SDK providers with one resource (service.name,
// service.version, service.instance.id) and exporters that share a single
// gRPC connection to Vigil's OTLP endpoint (127.0.0.1:4317 by default).
// NewSlogHandler bridges log/slog records to the OTel log SDK, keeping the
// trace and span IDs of the record's context, and Fanout sends records to
// several handlers, e.g. JSON on stdout and OTLP.
//
// It sits before Vigil's ingest in the data flow: what it exports is what
// Vigil's OTLP receivers decode.
package otelsetup
