//go:build race

package client

// raceEnabled says whether the race detector is on: it slows every call
// enough (tenfold and more on 2 cores) to hide a 20× slower instance among
// 32 concurrent callers, so the heaviest loopback tests are skipped.
const raceEnabled = true
