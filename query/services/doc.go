// Package services answers the service catalogue, the landing page of the
// UI: every service Vigil has seen, when, and which signals (traces,
// logs, metrics) it still has stored. It sits between web/api
// (GET /api/vigil/services) and the store that keeps the service
// dictionary, which it sees through [Lister].
package services
