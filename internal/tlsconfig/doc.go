// Package tlsconfig loads the TLS settings of Vigil's TCP listeners from a
// web configuration file in the format of the Prometheus exporter-toolkit
// (the file Prometheus and its exporters take with --web.config.file), and
// keeps them current while the server runs.
//
// One file serves every listener: cmd/vigil calls [Load] once and hands
// [Config.ServerTLS] to each component through its Options (web, OTLP
// gRPC and HTTP, Jaeger collector HTTP and gRPC, Zipkin). HTTP servers
// wrap their listener with tls.NewListener, gRPC servers take
// grpc.Creds(credentials.NewTLS(...)). The Jaeger agent's UDP ports carry
// no TLS.
//
// Only the tls_server_config section is used, built by the
// exporter-toolkit's own web.ConfigToTLSConfig so that every key means what
// it means for Prometheus. The file is decoded strictly: an unknown key is
// an error. The exporter-toolkit's other sections are refused when they ask
// for something Vigil does not do (basic_auth_users, rate_limit,
// http_server_config.headers, http_server_config.http2: false) rather than
// ignored, so that nobody believes a listener is protected by a setting
// that has no effect. A few combinations the exporter-toolkit accepts are
// refused too, because they would not do what they seem to: client_ca_file
// with a client_auth_type that does not verify, a verifying
// client_auth_type without client_ca_file (Go would fall back to the
// system's roots), client_allowed_sans without RequireAndVerifyClientCert.
//
// When client certificates are verified, TLS session tickets are off, so
// that every connection is verified against the client CA in force.
//
// The certificate, key and client CA files, and the web configuration file
// itself, are read again at every TLS handshake; when their content
// changed the configuration is rebuilt, so a certificate rotated on disk
// is served from the next connection on, without a restart. A change that
// does not load (a half-written file, a key that does not match the
// certificate) is logged once and the previous configuration stays in use.
package tlsconfig
