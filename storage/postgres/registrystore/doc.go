// Package registrystore keeps the state of Vigil's service registry
// (registry/, served as a Consul HTTP API subset by registry/consulapi) in
// PostgreSQL, so that it survives a restart and every replica answers the
// same: services, their checks with current status and output, the
// history of status transitions, and the registry-wide change index that
// blocking queries wait on.
//
// Every changing method runs one transaction that first locks the index
// row, so writers serialise in one order; when the transaction changed
// what the API shows it raises the index by one and sends NOTIFY
// vigil_registry with the new index as payload, delivered at commit.
// Follow turns those notifications (or, while its LISTEN session is lost,
// a re-read of the index every poll interval) into calls of a callback on
// every replica.
//
// Errors come back classified by pgcore (storage.ErrUnavailable when the
// database cannot serve); a missing service or check is
// storage.ErrNotFound. The schema is migrations/0012_registry.
package registrystore
