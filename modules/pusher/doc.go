// Package pusher is the vocabulary of the Pusher Channels protocol 7 as Fizz
// speaks it: event names, client frames, the pusher:error codes, channel-name
// rules, channel kinds and the HMAC signatures used by private and presence
// channel auth and by the REST API.
//
// It imports only the standard library, holds no state and starts no
// goroutines, so every function here is safe for concurrent use.
package pusher
