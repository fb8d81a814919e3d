// Package promremote receives Prometheus remote_write 1.0 (POST
// /api/v1/write, snappy-compressed prompb.WriteRequest) and writes the
// samples into a storage.AppendableV2, in Vigil the PostgreSQL metric
// store. Invalid series are refused with a 400 naming them while the valid
// rest of the request is stored. Bodies are read under the in-flight byte
// budget shared with the other receivers (internal/inflight): charged as
// they arrive and then for their decompressed size, until answered; a
// request the budget cannot cover gets 503 with Retry-After, which
// Prometheus retries.
package promremote
