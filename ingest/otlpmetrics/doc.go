// Package otlpmetrics turns OTLP metrics (pmetric.Metrics, as the OTLP
// receivers of ingest/otlp decode them) into Prometheus series with
// Prometheus's own OTLP translation
// (storage/remote/otlptranslator/prometheusremotewrite) and writes them into
// a storage.AppendableV2, in Vigil the PostgreSQL metric store.
package otlpmetrics
