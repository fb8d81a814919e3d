// Package ui embeds Vigil's web UI (the Vite build of the TypeScript
// sources beside this file) and serves it as a single-page application on
// the main HTTP port. It sits at the edge of the data flow: the UI's
// browser code calls the APIs of web/api; this package only serves files.
//
// The build lands in dist/app (git-ignored, produced by `make ui`). A clean
// checkout holds only the placeholder dist/index.html, which Handler then
// serves for every page, so `go build ./...` works without npm.
package ui
