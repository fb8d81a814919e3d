// Package auth implements Vigil's optional bearer-token authentication,
// shared by every receiver (OTLP, Jaeger, remote_write) and by the HTTP APIs.
//
// A [Tokens] set built from configuration either is empty, in which case
// authentication is off and every request passes, or holds the accepted
// tokens, in which case a request must present one of them as
// "Authorization: Bearer <token>" (HTTP header or gRPC metadata
// "authorization"). Tokens are compared in constant time.
//
// The package sits in front of ingest and web: it decides only whether a
// request may pass and never looks at the payload.
package auth
