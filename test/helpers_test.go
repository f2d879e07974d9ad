package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/test/harness"
	"github.com/fizz-server/fizz/test/pusherclient"
)

// The client helpers both suites use (Dial, Subscribe, Expect, Flush and
// the Require checks) are in test/harness; the webhook receiver is
// test/hookrecv.

// wait bounds every wait for something that must happen: harness.Wait.
const wait = harness.Wait

// trigger sends an event through the HTTP API with pusher-http-go,
// encrypted with the node's master key on private-encrypted- channels.
func trigger(t testing.TB, n *harness.Node, channel, event string, data any) {
	t.Helper()
	require.NoError(t, n.Trigger(channel, event, data), "trigger %s on %s", event, channel)
}

var seq atomic.Int64

// unique returns a channel name unique within the test binary.
func unique(prefix string) string {
	return fmt.Sprintf("%s%d", prefix, seq.Add(1))
}

// Frames decode the data of an event as the JSON it was triggered with.
func decodeText(t testing.TB, f pusherclient.Frame) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(f.Text()), &m), "data of %s", f)
	return m
}

// rawField returns the raw JSON of one top-level field of a frame.
func rawField(t testing.TB, raw []byte, field string) json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(raw, &m))
	return m[field]
}

// isJSONString reports whether raw is a JSON string.
func isJSONString(raw json.RawMessage) bool {
	return strings.HasPrefix(strings.TrimSpace(string(raw)), `"`)
}
