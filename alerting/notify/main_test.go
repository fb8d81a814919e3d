package notify_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when a goroutine outlives them: a
// Notifier runs sync loops, a dispatcher and an inhibitor.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// HTTP keep-alive connections of Alertmanager's receiver clients
		// close on their own idle timeout.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}
