// Package registryapi serves the state of Vigil's service registry
// (package registry) on Vigil's main HTTP port, for the UI, which cannot
// reach the registry's own Consul-compatible listener:
//
//   - GET /api/vigil/registry: the registered services, grouped by name,
//     each with its instances (ID, address, port, tags, meta) and their
//     checks (ID, name, type, status, output, last check, status since,
//     interval), with the status of each instance and service rolled up
//     from its checks;
//   - GET /api/vigil/registry/checks/{id}/history?limit=: the status
//     transitions of one check, newest first (limit 1 to 1000, default
//     50); 404 for a check neither registered nor in the history, which
//     outlives a deregistered check for the registry's retention.
//
// Both answer in the envelope {"data": …, "errors": …} and map errors
// with web/api's ErrorStatus; every query and path parameter is first
// checked with web/api's parameter checks (400 naming it), and a
// parameter a route does not know, or one given twice, is refused. When the
// registry is off (cmd/vigil passes a nil Source) both routes still
// answer 200, with "enabled": false, so that the UI can say so instead
// of showing an error.
//
// A check's HTTP headers and body are never shown, and the user
// information of its URL is redacted: they may carry credentials.
//
// The API reads a Source, which *registry.Registry implements; New
// returns a web.Mounter that cmd/vigil hands to web.New beside the other
// APIs of web/api.
package registryapi
