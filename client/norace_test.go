//go:build !race

package client

// raceEnabled says whether the race detector is on (see race_test.go).
const raceEnabled = false
