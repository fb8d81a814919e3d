// Package archtest holds no code: its test checks the direction of
// imports that docs/architecture.md and the style guide give (cmd → web →
// query, alerting → storage; ingest → storage; storage/postgres →
// storage, migrations; nothing imports cmd or web; the reference client
// imports nothing of the server), so that the arrows stay clean as the
// tree grows.
package archtest
