package pusher

import "strings"

// MaxChannelNameLength is the longest channel name Fizz accepts.
const MaxChannelNameLength = 200

// Channel-name prefixes, matched with their dashes. Order matters where one
// prefix starts another: the longer one is tested first.
const (
	PrefixPrivateEncryptedCache = "private-encrypted-cache-"
	PrefixPrivateEncrypted      = "private-encrypted-"
	PrefixPrivateCache          = "private-cache-"
	PrefixPresenceCache         = "presence-cache-"
	PrefixPrivate               = "private-"
	PrefixPresence              = "presence-"
	PrefixCache                 = "cache-"
	PrefixServerToUser          = "#server-to-user-"
)

// Kind describes what a channel's name makes of it.
type Kind struct {
	Private   bool // subscribing needs an auth signature
	Presence  bool // members with user ids; implies Private
	Encrypted bool // payloads end-to-end encrypted; client events refused
	Cache     bool // the last event is replayed to new subscribers
}

// KindOf reports the kind of channel name. It does not validate the name.
func KindOf(name string) Kind {
	switch {
	case strings.HasPrefix(name, PrefixPrivateEncryptedCache):
		return Kind{Private: true, Encrypted: true, Cache: true}
	case strings.HasPrefix(name, PrefixPrivateEncrypted):
		return Kind{Private: true, Encrypted: true}
	case strings.HasPrefix(name, PrefixPrivateCache):
		return Kind{Private: true, Cache: true}
	case strings.HasPrefix(name, PrefixPresenceCache):
		return Kind{Private: true, Presence: true, Cache: true}
	case strings.HasPrefix(name, PrefixPrivate):
		return Kind{Private: true}
	case strings.HasPrefix(name, PrefixPresence):
		return Kind{Private: true, Presence: true}
	case strings.HasPrefix(name, PrefixCache):
		return Kind{Cache: true}
	case strings.HasPrefix(name, PrefixServerToUser):
		// Only the server may publish to a user's channel; subscribing
		// needs proof that the socket is that user.
		return Kind{Private: true}
	default:
		return Kind{}
	}
}

// ValidChannelName reports whether name is a channel name Pusher allows:
// 1 to MaxChannelNameLength characters from [A-Za-z0-9_\-=@,.;], plus the
// leading '#' of a server-to-user channel, which must name a user.
func ValidChannelName(name string) bool {
	if name == "" || len(name) > MaxChannelNameLength || name == PrefixServerToUser {
		return false
	}
	rest := name
	if strings.HasPrefix(name, PrefixServerToUser) {
		rest = name[1:]
	}
	for i := 0; i < len(rest); i++ {
		if !channelNameByte[rest[i]] {
			return false
		}
	}
	return true
}

var channelNameByte = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "_-=@,.;" {
		t[c] = true
	}
	return t
}()
