// Package ingest declares the contract between Vigil's receivers (OTLP,
// Jaeger, remote_write, scraping) and the write pipeline: receivers decode
// each protocol into pdata, validate it, and hand it to a consumer that
// returns only once the data is durable. The receivers live in
// sub-packages; the batching pipeline lives in ingest/pipeline.
package ingest
