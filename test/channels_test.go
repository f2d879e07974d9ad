package e2e

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	pusherhttp "github.com/pusher/pusher-http-go/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/nacl/secretbox"

	"github.com/fizz-server/fizz/modules/membership"
	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/test/harness"
	"github.com/fizz-server/fizz/test/pusherclient"
)

// barrier makes each client answer a ping. After flush has shown that an
// event's broadcast is over, the pong proves that whatever that broadcast
// queued to these sockets has reached them too.
func barrier(t testing.TB, clients ...*pusherclient.Client) {
	t.Helper()
	for _, c := range clients {
		require.NoError(t, c.Ping(), "socket %s", c.SocketID)
	}
}

// decrypt opens the data of an event on an encrypted channel as pusher-js
// does: the shared secret is SHA256(channel name + master key), and the data
// holds a base64 nonce and a base64 nacl secretbox.
func decrypt(t testing.TB, f pusherclient.Frame, masterKey []byte) string {
	t.Helper()
	var box struct {
		Nonce      string `json:"nonce"`
		Ciphertext string `json:"ciphertext"`
	}
	require.NoError(t, f.DecodeData(&box))
	nonce, err := base64.StdEncoding.DecodeString(box.Nonce)
	require.NoError(t, err)
	require.Len(t, nonce, 24)
	sealed, err := base64.StdEncoding.DecodeString(box.Ciphertext)
	require.NoError(t, err)
	secret := sha256.Sum256(append([]byte(f.Channel), masterKey...))
	var n [24]byte
	copy(n[:], nonce)
	plain, ok := secretbox.Open(nil, sealed, &n, &secret)
	require.True(t, ok, "decrypt %s", f)
	return string(plain)
}

// TestEveryChannelKind subscribes to every kind of channel, receives an
// event triggered with pusher-http-go, unsubscribes and receives no more.
func TestEveryChannelKind(t *testing.T) {
	t.Parallel()
	n := harness.Start(t, nil)
	tests := []string{
		"public-",
		"private-",
		"presence-",
		"private-encrypted-",
		"cache-",
		"private-cache-",
		"presence-cache-",
		"private-encrypted-cache-",
	}
	for _, prefix := range tests {
		t.Run(prefix, func(t *testing.T) {
			t.Parallel()
			channel := unique(prefix + "room-")
			kind := pusher.KindOf(channel)
			c, watcher := harness.Dial(t, n), harness.Dial(t, n)
			for i, s := range []*pusherclient.Client{c, watcher} {
				if kind.Presence {
					f := harness.JoinPresence(t, s, channel, i+1, nil)
					require.Equal(t, pusher.EventSubscriptionSucceeded, f.Event, "%s", f)
				} else {
					harness.Subscribe(t, s, channel)
				}
			}
			trigger(t, n, channel, "greeting", map[string]string{"hello": "world"})
			f := harness.Expect(t, c, "greeting", channel)
			text := f.Text()
			if kind.Encrypted {
				text = decrypt(t, f, n.MasterKey)
			}
			assert.JSONEq(t, `{"hello":"world"}`, text)

			require.NoError(t, c.Unsubscribe(channel))
			barrier(t, c) // the unsubscribe has been handled
			trigger(t, n, channel, "after", map[string]string{"too": "late"})
			harness.Flush(t, n, channel, watcher)
			barrier(t, c)
			harness.RequireNone(t, c, "after", channel)
			harness.Expect(t, watcher, "after", channel)
		})
	}
}

func TestTrigger(t *testing.T) {
	t.Parallel()
	n := harness.Start(t, nil)
	a, b := harness.Dial(t, n), harness.Dial(t, n)
	for _, c := range []*pusherclient.Client{a, b} {
		harness.Subscribe(t, c, "news")
	}
	harness.Subscribe(t, b, "sports")

	t.Run("reaches every subscriber with the data as a JSON string", func(t *testing.T) {
		trigger(t, n, "news", "App\\Events\\Headline", map[string]any{"title": "hi", "n": 1})
		for _, c := range []*pusherclient.Client{a, b} {
			f := harness.Expect(t, c, "App\\Events\\Headline", "news")
			assert.True(t, isJSONString(f.Data), "data %s is sent as a JSON string, as Pusher does", f.Data)
			assert.JSONEq(t, `{"title":"hi","n":1}`, f.Text())
		}
	})
	t.Run("several channels at once", func(t *testing.T) {
		require.NoError(t, n.Pusher.TriggerMulti([]string{"news", "sports"}, "both", "plain text"))
		harness.Expect(t, a, "both", "news")
		harness.RequireNone(t, a, "both", "sports")
		fNews, fSports := harness.Expect(t, b, "both", "news"), harness.Expect(t, b, "both", "sports")
		assert.Equal(t, "plain text", fNews.Text())
		assert.Equal(t, "plain text", fSports.Text())
	})
	t.Run("a channel nobody is on", func(t *testing.T) {
		trigger(t, n, "empty-room", "nobody", "x")
	})
	t.Run("socket_id is excluded", func(t *testing.T) {
		require.NoError(t, n.Pusher.TriggerExclusive("news", "not-for-a", "x", a.SocketID))
		harness.Expect(t, b, "not-for-a", "news")
		harness.Flush(t, n, "news", a, b)
		harness.RequireNone(t, a, "not-for-a", "news")

		_, err := n.Pusher.TriggerWithParams("news", "not-for-b", "y", pusherhttp.TriggerParams{SocketID: &b.SocketID})
		require.NoError(t, err)
		harness.Expect(t, a, "not-for-b", "news")
		harness.Flush(t, n, "news", a, b)
		harness.RequireNone(t, b, "not-for-b", "news")
	})
}

// TestEncryptedChannel: an event that pusher-http-go encrypts with the
// master key is relayed untouched and decrypts as pusher-js would.
func TestEncryptedChannel(t *testing.T) {
	t.Parallel()
	n := harness.Start(t, nil)
	for _, channel := range []string{"private-encrypted-vault", "private-encrypted-cache-vault"} {
		c := harness.Dial(t, n)
		harness.Subscribe(t, c, channel)
		require.NoError(t, n.EncryptedPusher().Trigger(channel, "secret", map[string]string{"pin": "1234"}))
		f := harness.Expect(t, c, "secret", channel)
		assert.NotContains(t, string(f.Raw), "1234", "the server sees only ciphertext")
		assert.JSONEq(t, `{"pin":"1234"}`, decrypt(t, f, n.MasterKey))
	}
	// The cached ciphertext is replayed as is and still decrypts.
	late := harness.Dial(t, n)
	harness.Subscribe(t, late, "private-encrypted-cache-vault")
	f := harness.Expect(t, late, "secret", "private-encrypted-cache-vault")
	assert.JSONEq(t, `{"pin":"1234"}`, decrypt(t, f, n.MasterKey))
}

func TestInvalidChannelNames(t *testing.T) {
	t.Parallel()
	n := harness.Start(t, nil)
	tests := []struct {
		name string
		give string
	}{
		{name: "201 characters", give: strings.Repeat("a", 201)},
		{name: "201 characters with a prefix", give: "private-" + strings.Repeat("a", 193)},
		{name: "space", give: "bad name"},
		{name: "colon", give: "bad:name"},
		{name: "slash", give: "bad/name"},
		{name: "hash", give: "#bad"},
		{name: "non-ASCII", give: "café"},
		{name: "newline", give: "news\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := harness.Dial(t, n)
			a := ""
			if pusher.KindOf(tt.give).Private {
				a = harness.Auth(c, tt.give, "")
			}
			f, err := c.Subscribe(tt.give, a, "")
			require.NoError(t, err)
			require.Equal(t, pusher.EventError, f.Event, "%s", f)
			e, err := f.PusherError()
			require.NoError(t, err)
			assert.Equal(t, pusher.CodeGeneric, e.Code)
			harness.RequireOpen(t, c)
			harness.RequireNone(t, c, pusher.EventSubscriptionSucceeded, "")
		})
	}
	t.Run("200 characters is fine", func(t *testing.T) {
		t.Parallel()
		c := harness.Dial(t, n)
		harness.Subscribe(t, c, "private-"+strings.Repeat("b", 192))
		harness.Subscribe(t, c, "a-Z_0-9=@,.;"+strings.Repeat("c", 188))
	})
}

// TestFailedAuth: a refused signature is answered with
// pusher:subscription_error (status 401) on that channel, and the socket is
// not subscribed: an event on the channel does not reach it.
func TestFailedAuth(t *testing.T) {
	t.Parallel()
	n := harness.Start(t, nil)
	const channelData = `{"user_id":"7","user_info":{"name":"Mallory"}}`
	tests := []struct {
		name    string
		channel string
		// give returns the auth and channel_data c sends.
		give func(c *pusherclient.Client, channel string) (auth, channelData string)
	}{
		{name: "no auth", channel: "private-a", give: func(*pusherclient.Client, string) (string, string) { return "", "" }},
		{name: "garbage", channel: "private-a", give: func(*pusherclient.Client, string) (string, string) { return "nonsense", "" }},
		{name: "wrong secret", channel: "private-a", give: func(c *pusherclient.Client, ch string) (string, string) {
			return c.Auth(n.App.Key, "not-the-secret", ch, ""), ""
		}},
		{name: "wrong key", channel: "private-a", give: func(c *pusherclient.Client, ch string) (string, string) {
			return "other-key" + strings.TrimPrefix(harness.Auth(c, ch, ""), n.App.Key), ""
		}},
		{name: "signed for another socket", channel: "private-a", give: func(_ *pusherclient.Client, ch string) (string, string) {
			return pusherclient.ChannelAuth(n.App.Key, n.App.Secret, "1.2", ch, ""), ""
		}},
		{name: "signed for another channel", channel: "private-a", give: func(c *pusherclient.Client, _ string) (string, string) {
			return harness.Auth(c, "private-b", ""), ""
		}},
		{name: "signature in upper case", channel: "private-a", give: func(c *pusherclient.Client, ch string) (string, string) {
			a := harness.Auth(c, ch, "")
			return n.App.Key + ":" + strings.ToUpper(strings.TrimPrefix(a, n.App.Key+":")), ""
		}},
		{name: "encrypted channel", channel: "private-encrypted-a", give: func(*pusherclient.Client, string) (string, string) { return "x:y", "" }},
		{name: "encrypted cache channel", channel: "private-encrypted-cache-a", give: func(*pusherclient.Client, string) (string, string) { return "", "" }},
		{name: "private cache channel", channel: "private-cache-a", give: func(*pusherclient.Client, string) (string, string) { return "", "" }},
		{name: "presence without auth", channel: "presence-a", give: func(*pusherclient.Client, string) (string, string) { return "", channelData }},
		{name: "presence with other channel_data", channel: "presence-a", give: func(c *pusherclient.Client, ch string) (string, string) {
			return harness.Auth(c, ch, `{"user_id":"1"}`), channelData
		}},
		{name: "presence-cache signed without channel_data", channel: "presence-cache-a", give: func(c *pusherclient.Client, ch string) (string, string) {
			return harness.Auth(c, ch, ""), channelData
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			channel := unique(tt.channel)
			watcher := harness.Dial(t, n)
			if pusher.KindOf(channel).Presence {
				f := harness.JoinPresence(t, watcher, channel, "watcher", nil)
				require.Equal(t, pusher.EventSubscriptionSucceeded, f.Event, "%s", f)
			} else {
				harness.Subscribe(t, watcher, channel)
			}
			c := harness.Dial(t, n)
			a, data := tt.give(c, channel)
			f, err := c.Subscribe(channel, a, data)
			require.NoError(t, err)
			require.Equal(t, pusher.EventSubscriptionError, f.Event, "%s", f)
			require.Equal(t, channel, f.Channel)
			e, err := f.SubscriptionError()
			require.NoError(t, err)
			assert.Equal(t, 401, e.Status)
			assert.NotEmpty(t, e.Type)

			// Not subscribed: neither an event nor a member change reaches it.
			trigger(t, n, channel, "secret", "x")
			harness.Flush(t, n, channel, watcher)
			barrier(t, c)
			harness.RequireNone(t, c, "secret", channel)
			harness.RequireNone(t, c, pusher.EventSubscriptionSucceeded, "")
			harness.RequireOpen(t, c)
		})
	}
}

// TestSubscriptionsPerSocketAreBounded: one socket cannot join channels
// without end (each costs the server memory); the refusal is a
// subscription_error on the channel, and the socket stays usable.
func TestSubscriptionsPerSocketAreBounded(t *testing.T) {
	t.Parallel()
	n := harness.Start(t, nil)
	c := harness.Dial(t, n)
	for i := range membership.MaxChannelsPerSocket {
		require.NoError(t, c.SendSubscribe(fmt.Sprintf("bounded-%d", i), "", ""))
	}
	last := fmt.Sprintf("bounded-%d", membership.MaxChannelsPerSocket-1)
	harness.Expect(t, c, pusher.EventSubscriptionSucceeded, last)

	f, err := c.Subscribe("one-too-many", "", "")
	require.NoError(t, err)
	require.Equal(t, pusher.EventSubscriptionError, f.Event, "%s", f)
	assert.Contains(t, string(f.Data), `"status":403`)
	harness.RequireOpen(t, c)

	require.NoError(t, c.Unsubscribe("bounded-0"))
	harness.Subscribe(t, c, "one-too-many")
	trigger(t, n, "one-too-many", "still-served", "yes")
	harness.Expect(t, c, "still-served", "one-too-many")
}
