package e2e

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/app"
	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/test/harness"
	"github.com/fizz-server/fizz/test/pusherclient"
)

// Small presence limits, so that reaching them is quick.
const (
	presenceMembers  = 3
	presenceUserInfo = 100
)

func startPresenceNode(t *testing.T) *harness.Node {
	return harness.Start(t, func(c *app.Config) {
		c.Apps[0].MaxPresenceMembers = presenceMembers
		c.Apps[0].MaxPresenceUserInfo = presenceUserInfo
	})
}

// requireJoined requires subscription_succeeded and returns its member list.
func requireJoined(t testing.TB, f pusherclient.Frame) pusherclient.PresenceList {
	t.Helper()
	require.Equal(t, pusher.EventSubscriptionSucceeded, f.Event, "%s", f)
	p, err := f.PresenceList()
	require.NoError(t, err, "ids must be strings")
	return p
}

// member is the data of member_added / member_removed.
type member struct {
	UserID   string          `json:"user_id"`
	UserInfo json.RawMessage `json:"user_info"`
}

func decodeMember(t testing.TB, f pusherclient.Frame) member {
	t.Helper()
	var m member
	require.NoError(t, f.DecodeData(&m), "user_id must be a string: %s", f)
	return m
}

func TestPresenceMembers(t *testing.T) {
	t.Parallel()
	n := startPresenceNode(t)
	const channel = "presence-room"
	ann1, bob, ann2 := harness.Dial(t, n), harness.Dial(t, n), harness.Dial(t, n)

	p := requireJoined(t, harness.JoinPresence(t, ann1, channel, "ann", map[string]string{"name": "Ann"}))
	assert.Equal(t, []string{"ann"}, p.Presence.IDs)
	assert.Equal(t, 1, p.Presence.Count)
	assert.JSONEq(t, `{"name":"Ann"}`, string(p.Presence.Hash["ann"]))

	p = requireJoined(t, harness.JoinPresence(t, bob, channel, "bob", map[string]string{"name": "Bob"}))
	assert.ElementsMatch(t, []string{"ann", "bob"}, p.Presence.IDs)
	assert.Equal(t, 2, p.Presence.Count)
	assert.JSONEq(t, `{"name":"Ann"}`, string(p.Presence.Hash["ann"]))
	assert.JSONEq(t, `{"name":"Bob"}`, string(p.Presence.Hash["bob"]))

	added := decodeMember(t, harness.Expect(t, ann1, pusher.EventMemberAdded, channel))
	assert.Equal(t, "bob", added.UserID)
	assert.JSONEq(t, `{"name":"Bob"}`, string(added.UserInfo))

	t.Run("a user's second socket is not announced", func(t *testing.T) {
		p := requireJoined(t, harness.JoinPresence(t, ann2, channel, "ann", map[string]string{"name": "Ann"}))
		assert.ElementsMatch(t, []string{"ann", "bob"}, p.Presence.IDs)
		assert.Equal(t, 2, p.Presence.Count)
		harness.Flush(t, n, channel, ann1, bob, ann2)
		harness.RequireNone(t, bob, pusher.EventMemberAdded, channel)
		harness.RequireNone(t, ann1, pusher.EventMemberAdded, channel)
		harness.RequireNone(t, ann2, pusher.EventMemberAdded, channel)
	})
	t.Run("the joining socket does not hear about itself", func(t *testing.T) {
		harness.RequireNone(t, bob, pusher.EventMemberAdded, channel)
	})
	t.Run("a user's last socket but one leaving is not announced", func(t *testing.T) {
		require.NoError(t, ann2.Unsubscribe(channel))
		barrier(t, ann2)
		harness.Flush(t, n, channel, ann1, bob)
		harness.RequireNone(t, bob, pusher.EventMemberRemoved, channel)
		harness.RequireNone(t, ann1, pusher.EventMemberRemoved, channel)
	})
	t.Run("a user's last socket leaving is announced", func(t *testing.T) {
		require.NoError(t, ann1.Close())
		removed := decodeMember(t, harness.Expect(t, bob, pusher.EventMemberRemoved, channel))
		assert.Equal(t, "ann", removed.UserID)
		harness.Flush(t, n, channel, bob)
		harness.RequireNone(t, bob, pusher.EventMemberRemoved, channel) // exactly one
	})
	t.Run("the member list follows", func(t *testing.T) {
		late := harness.Dial(t, n)
		p := requireJoined(t, harness.JoinPresence(t, late, channel, "cid", nil))
		assert.ElementsMatch(t, []string{"bob", "cid"}, p.Presence.IDs)
		assert.Equal(t, 2, p.Presence.Count)
	})
}

// TestPresenceIntegerUserIDs: Laravel sends user ids as integers; clients
// receive them as strings everywhere.
func TestPresenceIntegerUserIDs(t *testing.T) {
	t.Parallel()
	n := startPresenceNode(t)
	const channel = "presence-numbers"
	ten, twenty := harness.Dial(t, n), harness.Dial(t, n)

	requireJoined(t, harness.JoinPresence(t, ten, channel, 10, nil))
	f := harness.JoinPresence(t, twenty, channel, 20, map[string]int{"age": 3})
	require.Equal(t, pusher.EventSubscriptionSucceeded, f.Event, "%s", f)
	var raw struct {
		Presence struct {
			IDs  []json.RawMessage          `json:"ids"`
			Hash map[string]json.RawMessage `json:"hash"`
		} `json:"presence"`
	}
	require.NoError(t, f.DecodeData(&raw))
	require.Len(t, raw.Presence.IDs, 2)
	for _, id := range raw.Presence.IDs {
		assert.True(t, isJSONString(id), "id %s in ids is a JSON string", id)
	}
	assert.Contains(t, raw.Presence.Hash, "10")
	assert.Contains(t, raw.Presence.Hash, "20")

	added := harness.Expect(t, ten, pusher.EventMemberAdded, channel)
	assert.True(t, isJSONString(rawField(t, []byte(added.Text()), "user_id")), "member_added user_id: %s", added)
	assert.Equal(t, "20", decodeMember(t, added).UserID)

	require.NoError(t, twenty.Close())
	removed := harness.Expect(t, ten, pusher.EventMemberRemoved, channel)
	assert.True(t, isJSONString(rawField(t, []byte(removed.Text()), "user_id")), "member_removed user_id: %s", removed)
	assert.Equal(t, "20", decodeMember(t, removed).UserID)
}

func TestPresenceLimits(t *testing.T) {
	t.Parallel()
	n := startPresenceNode(t)

	t.Run("members", func(t *testing.T) {
		t.Parallel()
		const channel = "presence-full"
		sockets := make([]*pusherclient.Client, presenceMembers)
		for i := range sockets {
			sockets[i] = harness.Dial(t, n)
			requireJoined(t, harness.JoinPresence(t, sockets[i], channel, i+1, nil))
		}
		extra := harness.Dial(t, n)
		f := harness.JoinPresence(t, extra, channel, "one-too-many", nil)
		require.Equal(t, pusher.EventSubscriptionError, f.Event, "%s", f)
		require.Equal(t, channel, f.Channel)
		harness.RequireOpen(t, extra)

		// Another socket of a member is no new member.
		again := harness.Dial(t, n)
		requireJoined(t, harness.JoinPresence(t, again, channel, 1, nil))

		// The refused user is not a member: nobody heard of it.
		harness.Flush(t, n, channel, sockets...)
		for _, s := range sockets {
			for _, f := range s.Pending() {
				if f.Event == pusher.EventMemberAdded {
					assert.NotEqual(t, "one-too-many", decodeMember(t, f).UserID)
				}
			}
		}

		// Once a member leaves there is room again.
		require.NoError(t, sockets[2].Unsubscribe(channel))
		barrier(t, sockets[2])
		requireJoined(t, harness.JoinPresence(t, extra, channel, "one-too-many", nil))
	})
	t.Run("user_info size", func(t *testing.T) {
		t.Parallel()
		const channel = "presence-info"
		c := harness.Dial(t, n)
		big := map[string]string{"bio": strings.Repeat("x", presenceUserInfo)}
		f := harness.JoinPresence(t, c, channel, "big", big)
		require.Equal(t, pusher.EventSubscriptionError, f.Event, "%s", f)
		require.Equal(t, channel, f.Channel)
		harness.RequireOpen(t, c)

		small := map[string]string{"bio": strings.Repeat("x", presenceUserInfo/2)}
		requireJoined(t, harness.JoinPresence(t, c, channel, "small", small))
	})
	t.Run("channel_data without user_id", func(t *testing.T) {
		t.Parallel()
		const channel = "presence-anonymous"
		c := harness.Dial(t, n)
		data := `{"user_info":{"name":"nobody"}}`
		f, err := c.Subscribe(channel, harness.Auth(c, channel, data), data)
		require.NoError(t, err)
		require.Equal(t, pusher.EventSubscriptionError, f.Event, "%s", f)
		require.Equal(t, channel, f.Channel)
		harness.RequireOpen(t, c)
	})
}
