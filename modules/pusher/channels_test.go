package pusher_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/fizz-server/fizz/modules/pusher"
)

// channelNameChars is every character Pusher allows in a channel name.
const channelNameChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-=@,.;"

func TestValidChannelName(t *testing.T) {
	tests := []struct {
		name string
		give string
		want bool
	}{
		{name: "public", give: "my-channel", want: true},
		{name: "every allowed character", give: channelNameChars, want: true},
		{name: "single character", give: "a", want: true},
		{name: "only punctuation", give: "-=@,.;_", want: true},
		{name: "Laravel style", give: "App.Models.User.1", want: true},
		{name: "private", give: "private-foobar", want: true},
		{name: "private-encrypted", give: "private-encrypted-foobar", want: true},
		{name: "private-encrypted-cache", give: "private-encrypted-cache-foobar", want: true},
		{name: "private-cache", give: "private-cache-foobar", want: true},
		{name: "presence", give: "presence-foobar", want: true},
		{name: "presence-cache", give: "presence-cache-foobar", want: true},
		{name: "cache", give: "cache-foobar", want: true},
		{name: "server-to-user", give: "#server-to-user-12345", want: true},
		{name: "bare prefix", give: "private-", want: true},
		{name: "server-to-user without the hash", give: "server-to-user-1", want: true},
		{name: "200 characters", give: strings.Repeat("a", 200), want: true},
		{name: "200 characters with a prefix", give: "presence-cache-" + strings.Repeat("x", 185), want: true},
		{name: "200 characters server-to-user", give: "#server-to-user-" + strings.Repeat("1", 184), want: true},

		{name: "empty", give: "", want: false},
		{name: "201 characters", give: strings.Repeat("a", 201), want: false},
		{name: "201 characters with a prefix", give: "private-" + strings.Repeat("x", 193), want: false},
		{name: "201 characters server-to-user", give: "#server-to-user-" + strings.Repeat("1", 185), want: false},
		{name: "space", give: "my channel", want: false},
		{name: "leading space", give: " private-a", want: false},
		{name: "trailing newline", give: "private-a\n", want: false},
		{name: "tab", give: "a\tb", want: false},
		{name: "NUL", give: "a\x00", want: false},
		{name: "DEL", give: "a\x7f", want: false},
		{name: "hash in the middle", give: "foo#bar", want: false},
		{name: "hash at the end", give: "foo#", want: false},
		{name: "hash without the server-to-user prefix", give: "#foo", want: false},
		{name: "hash before another prefix", give: "#private-a", want: false},
		{name: "double hash", give: "##server-to-user-1", want: false},
		{name: "server-to-user without a user", give: "#server-to-user-", want: false},
		{name: "second hash in a server-to-user name", give: "#server-to-user-1#2", want: false},
		{name: "server-to-user prefix not at the start", give: "private-#server-to-user-1", want: false},
		{name: "colon", give: "private:a", want: false},
		{name: "slash", give: "a/b", want: false},
		{name: "backslash", give: `a\b`, want: false},
		{name: "quote", give: `a"b`, want: false},
		{name: "apostrophe", give: "a'b", want: false},
		{name: "plus", give: "a+b", want: false},
		{name: "percent", give: "a%20b", want: false},
		{name: "ampersand", give: "a&b", want: false},
		{name: "pipe", give: "auth0|123", want: false},
		{name: "asterisk", give: "a*", want: false},
		{name: "question mark", give: "a?", want: false},
		{name: "exclamation mark", give: "a!", want: false},
		{name: "tilde", give: "a~b", want: false},
		{name: "brackets", give: "a[0]", want: false},
		{name: "braces", give: "a{b}", want: false},
		{name: "angle brackets", give: "<a>", want: false},
		{name: "Latin-1 letter", give: "café", want: false},
		{name: "CJK", give: "日本", want: false},
		{name: "emoji", give: "private-😀", want: false},
		{name: "invalid UTF-8", give: "a\xff", want: false},
		{name: "fullwidth letter", give: "ａ", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, pusher.ValidChannelName(tt.give))
		})
	}
}

func TestValidChannelNameEveryByte(t *testing.T) {
	for c := range 256 {
		name := "private-" + string([]byte{byte(c)})
		want := strings.IndexByte(channelNameChars, byte(c)) >= 0
		assert.Equal(t, want, pusher.ValidChannelName(name), "byte %#02x", c)
	}
}

func TestKindOf(t *testing.T) {
	tests := []struct {
		give string
		want pusher.Kind
	}{
		{give: "my-channel", want: pusher.Kind{}},
		{give: "", want: pusher.Kind{}},
		{give: "private-a", want: pusher.Kind{Private: true}},
		{give: "private-", want: pusher.Kind{Private: true}},
		{give: "presence-a", want: pusher.Kind{Private: true, Presence: true}},
		{give: "presence-cache-a", want: pusher.Kind{Private: true, Presence: true, Cache: true}},
		{give: "private-encrypted-a", want: pusher.Kind{Private: true, Encrypted: true}},
		{give: "private-encrypted-cache-a", want: pusher.Kind{Private: true, Encrypted: true, Cache: true}},
		{give: "private-cache-a", want: pusher.Kind{Private: true, Cache: true}},
		{give: "cache-a", want: pusher.Kind{Cache: true}},
		{give: "#server-to-user-1", want: pusher.Kind{Private: true}},

		// Prefixes count only with their dashes.
		{give: "private", want: pusher.Kind{}},
		{give: "privatefoo", want: pusher.Kind{}},
		{give: "presence", want: pusher.Kind{}},
		{give: "presencefoo", want: pusher.Kind{}},
		{give: "cache", want: pusher.Kind{}},
		{give: "cachefoo", want: pusher.Kind{}},
		{give: "#server-to-user", want: pusher.Kind{}},
		{give: "server-to-user-1", want: pusher.Kind{}},
		{give: "private-encrypted", want: pusher.Kind{Private: true}},
		{give: "private-encryptedfoo", want: pusher.Kind{Private: true}},
		{give: "private-encrypted-cache", want: pusher.Kind{Private: true, Encrypted: true}},
		{give: "private-cache", want: pusher.Kind{Private: true}},
		{give: "private-cachefoo", want: pusher.Kind{Private: true}},
		{give: "presence-cache", want: pusher.Kind{Private: true, Presence: true}},
		{give: "presence-cachefoo", want: pusher.Kind{Private: true, Presence: true}},

		// Prefixes count only at the start and in lower case.
		{give: "Private-a", want: pusher.Kind{}},
		{give: "PRESENCE-a", want: pusher.Kind{}},
		{give: "my-private-a", want: pusher.Kind{}},
		{give: "cache-private-a", want: pusher.Kind{Cache: true}},
		{give: "cache-presence-a", want: pusher.Kind{Cache: true}},
		{give: "presence-private-encrypted-a", want: pusher.Kind{Private: true, Presence: true}},
		{give: "private-presence-a", want: pusher.Kind{Private: true}},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			assert.Equal(t, tt.want, pusher.KindOf(tt.give))
		})
	}
}
