package scaling_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/scaling"
)

// counted records the KindCount envelopes a node receives.
type counted struct {
	mu  sync.Mutex
	got []string // "channel=count"
}

func (c *counted) Kind() string { return scaling.KindCount }

func (c *counted) Handle(_ context.Context, e scaling.Envelope) {
	var ev scaling.CountEvent
	_ = json.Unmarshal(e.Payload, &ev)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, ev.Channel+"="+string(rune('0'+ev.SubscriptionCount)))
}

func (c *counted) all() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.got...)
}

// usersImpls are the states the sign-in tests run on, each with every
// webhook kind and announced counts on for testApp.
var usersImpls = []struct {
	name string
	new  func(t *testing.T, also scaling.Handler) (scaling.State, *heard)
}{
	{name: "local", new: func(t *testing.T, also scaling.Handler) (scaling.State, *heard) {
		h := &heard{}
		router, err := scaling.NewRouter([]scaling.Handler{h, also}, slog.New(slog.DiscardHandler))
		require.NoError(t, err)
		p := scaling.NewLocal(nil)
		require.NoError(t, p.Subscribe(context.Background(), router.Deliver))
		t.Cleanup(func() { _ = p.Close() })
		return scaling.NewLocalState(p, scaling.Config{Webhooks: everyHook, SubscriptionCounts: map[string]bool{testApp: true}}), h
	}},
	{name: "redis", new: func(t *testing.T, also scaling.Handler) (scaling.State, *heard) {
		n := newRedisCluster(t).running(t, nodeOptions{webhooks: everyHook, counted: map[string]bool{testApp: true}, also: also})
		return n.rs, n.heard
	}},
}

// TestSignInMakesUsersOnline: a user is online from their first
// signed-in socket to their last; the change is a member transition of
// UsersChannel, published like any other, and never a webhook.
func TestSignInMakesUsersOnline(t *testing.T) {
	for _, impl := range usersImpls {
		t.Run(impl.name, func(t *testing.T) {
			ctx := context.Background()
			state, heard := impl.new(t, &counted{})
			ts, err := state.SignIn(ctx, testApp, "a")
			require.NoError(t, err)
			assert.Contains(t, kinds(ts), scaling.MemberAdded)
			ts, err = state.SignIn(ctx, testApp, "a")
			require.NoError(t, err)
			assert.NotContains(t, kinds(ts), scaling.MemberAdded, "a second socket")

			online, seq, err := state.Online(ctx, testApp, []string{"b", "a"})
			require.NoError(t, err)
			assert.Equal(t, []string{"a"}, online)
			assert.NotZero(t, seq)

			ts, err = state.SignOut(ctx, testApp, "a")
			require.NoError(t, err)
			assert.NotContains(t, kinds(ts), scaling.MemberRemoved, "one socket left")
			ts, err = state.SignOut(ctx, testApp, "a")
			require.NoError(t, err)
			removed := ts[0]
			require.Equal(t, scaling.MemberRemoved, removed.Kind)
			online, seq2, err := state.Online(ctx, testApp, []string{"a"})
			require.NoError(t, err)
			assert.Empty(t, online)
			assert.Equal(t, removed.Seq, seq2, "the answer reflects the last change")
			assert.Greater(t, seq2, seq)

			require.Eventually(t, func() bool { return len(heard.all()) == 2 }, stateWait, stateTick)
			for _, e := range heard.all() {
				var ev scaling.MemberEvent
				require.NoError(t, json.Unmarshal(e.Payload, &ev))
				assert.Equal(t, scaling.UsersChannel, ev.Channel)
			}
			o := state.(scaling.Outbox)
			lead, err := o.Lead(ctx)
			require.NoError(t, err)
			require.True(t, lead)
			es, err := o.Read(ctx, 10)
			require.NoError(t, err)
			assert.Empty(t, es, "signed-in users are no channel: no webhook")
		})
	}
}

// TestCountsAreAnnounced: with announced counts on, each new count of a
// non-presence channel is published with its change's Seq; presence
// channels and apps without the setting publish none.
func TestCountsAreAnnounced(t *testing.T) {
	for _, impl := range usersImpls {
		t.Run(impl.name, func(t *testing.T) {
			ctx := context.Background()
			rec := &counted{}
			state, _ := impl.new(t, rec)
			_, err := state.SetSubscriptions(ctx, []scaling.ChannelCount{{AppID: testApp, Channel: "news", Subscriptions: 2}})
			require.NoError(t, err)
			_, err = state.SetSubscriptions(ctx, []scaling.ChannelCount{{AppID: "other-app", Channel: "news", Subscriptions: 2}})
			require.NoError(t, err)
			_, _, err = state.JoinPresence(ctx, testApp, "presence-room", "u1", nil, 0)
			require.NoError(t, err)
			_, err = state.SetSubscriptions(ctx, []scaling.ChannelCount{{AppID: testApp, Channel: "news", Subscriptions: 1}})
			require.NoError(t, err)
			// A last count as a fence: what was published before it has come.
			_, err = state.SetSubscriptions(ctx, []scaling.ChannelCount{{AppID: testApp, Channel: "fence", Subscriptions: 1}})
			require.NoError(t, err)
			require.Eventually(t, func() bool { return len(rec.all()) >= 3 }, stateWait, stateTick)
			assert.Equal(t, []string{"news=2", "news=1", "fence=1"}, rec.all())
		})
	}
}
