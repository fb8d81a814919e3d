// Package migrations holds Vigil's versioned schema as embedded SQL files
// named NNNN_name.up.sql. storage/postgres applies them at start-up under an
// advisory lock; see docs/storage.md for the reasoning behind the schema.
package migrations

import "embed"

// FS holds every migration file. Files are applied in lexical order of their
// four-digit version prefix.
//
//go:embed *.sql
var FS embed.FS
