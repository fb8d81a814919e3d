// Package promremote receives Prometheus remote_write 1.0 (POST
// /api/v1/write, snappy-compressed prompb.WriteRequest) and appends the
// samples to a storage.AppendableV2: in Vigil the group-commit metric
// pipeline (pipeline.MetricPipeline), which commits them with the
// samples of concurrent requests into the PostgreSQL metric store and
// answers once they are durable. Invalid series are refused with a 400
// naming them while the valid rest of the request is stored.
//
// Failures are answered as by every receiver (ingest/internal/receiver),
// but for Prometheus's retry rules: a sender retries every 5xx answer and
// a 429 only with retry_on_http_429, so push-back (the pipeline's queue
// full, the in-flight budget spent) is 503 with Retry-After, as are a
// pipeline shutting down and an unavailable database; nothing of such a
// request was stored. Bodies are read under the in-flight byte budget
// shared with the other receivers (internal/inflight): charged as they
// arrive and then for their decompressed size, until answered.
package promremote
