package cluster_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/test/harness"
	"github.com/fizz-server/fizz/test/pusherclient"
)

// signin signs c in as user id with pusher:signin.
func signin(t testing.TB, c *pusherclient.Client, id string) {
	t.Helper()
	userData, err := json.Marshal(map[string]string{"id": id})
	require.NoError(t, err)
	auth := harness.AppKey + ":" + pusher.Sign(harness.AppSecret, pusher.UserAuthMessage(c.SocketID, string(userData)))
	require.NoError(t, c.Send(pusher.EventSignin, "", map[string]string{"user_data": string(userData), "auth": auth}))
	harness.Expect(t, c, "pusher:signin_success", "")
}

// TestClusterTerminate: terminate_connections through one node closes the
// user's sockets on every other node with 4009, and nobody else's.
func TestClusterTerminate(t *testing.T) {
	t.Parallel()
	nodes := startNodes(t, true, 3, nil)
	a, b, c := nodes[0], nodes[1], nodes[2]
	const room = "presence-terminate"

	bystander := harness.Dial(t, a)
	join(t, bystander, room, "bystander")
	// The victim has a presence socket on A and a signed-in socket on C.
	victimA := harness.Dial(t, a)
	join(t, victimA, room, "victim")
	victimC := harness.Dial(t, c)
	signin(t, victimC, "victim")
	require.Equal(t, "victim", memberID(t, harness.Expect(t, bystander, pusher.EventMemberAdded, room)))

	status, body := api(t, b, http.MethodPost, "/users/victim/terminate_connections", nil, []byte("{}"))
	require.Equal(t, http.StatusOK, status, "terminate through B: %s", body)

	harness.RequireFatal(t, victimA, pusher.CodeUnauthorized)
	harness.RequireFatal(t, victimC, pusher.CodeUnauthorized)
	harness.RequireOpen(t, bystander)
	require.Equal(t, "victim", memberID(t, harness.Expect(t, bystander, pusher.EventMemberRemoved, room)))
	waitConnections(t, b, 1)
	harness.Flush(t, c, room, bystander)
	assert.Empty(t, take(bystander, pusher.EventMemberRemoved, room), "one member_removed for the victim")
	assert.Equal(t, []string{"bystander"}, channelUsers(t, b, room))
}
