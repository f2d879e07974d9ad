package fanout

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"
)

// Mode selects how a socket's writer drains its queue.
type Mode int

// The two writer modes.
const (
	// Coalesce writes everything queued with one write call.
	Coalesce Mode = iota
	// Frame writes each queued frame with its own write call.
	Frame
)

// ParseMode reads "coalesce" or "frame".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "coalesce":
		return Coalesce, nil
	case "frame":
		return Frame, nil
	}
	return 0, fmt.Errorf("mode %q: want coalesce or frame", s)
}

// String returns the mode's flag spelling.
func (m Mode) String() string {
	if m == Frame {
		return "frame"
	}
	return "coalesce"
}

const (
	// QueueSize bounds the frames waiting for one socket, as Fizz's does.
	QueueSize = 256
	// writeTimeout bounds one write to a socket.
	writeTimeout = 10 * time.Second
	// closeWait bounds the last write of a closing socket.
	closeWait = time.Second
	// maxBody bounds a trigger request body.
	maxBody = 64 << 10
	// readLimit bounds one client message.
	readLimit = 64 << 10
)

// Server is the fixture: an http.Handler for /app/{key} and
// POST /apps/{id}/events.
type Server struct {
	mode     Mode
	upgrader websocket.Upgrader
	mux      *http.ServeMux
	nextID   atomic.Uint64

	mu       sync.RWMutex
	closed   bool
	sockets  map[*socket]struct{}
	channels map[string]map[*socket]struct{}

	wg sync.WaitGroup // one per socket handler
}

// New returns a Server whose writers work in mode. It starts nothing.
func New(mode Mode) *Server {
	s := &Server{
		mode: mode,
		upgrader: websocket.Upgrader{
			ReadBufferSize: 1024,
			// Every write goes around the library (pre-framed bytes on the
			// net.Conn); a pool keeps it from holding a buffer per socket.
			WriteBufferPool: &sync.Pool{},
			CheckOrigin:     func(*http.Request) bool { return true },
		},
		mux:      http.NewServeMux(),
		sockets:  make(map[*socket]struct{}),
		channels: make(map[string]map[*socket]struct{}),
	}
	s.mux.HandleFunc("GET /app/{key}", s.serveSocket)
	s.mux.HandleFunc("POST /apps/{id}/events", s.trigger)
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Close closes every socket and waits for their goroutines. New sockets are
// refused afterwards.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	all := make([]*socket, 0, len(s.sockets))
	for c := range s.sockets {
		all = append(all, c)
	}
	s.mu.Unlock()
	for _, c := range all {
		_ = c.nc.Close() // the reader sees the error and cleans up
	}
	s.wg.Wait()
}

// serveSocket upgrades and runs one socket's read loop until it ends.
func (s *Server) serveSocket(w http.ResponseWriter, r *http.Request) {
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade has answered the request
	}
	n := s.nextID.Add(1)
	id := strconv.FormatUint(n/1_000_000+1, 10) + "." + strconv.FormatUint(n%1_000_000, 10)
	c := newSocket(s.mode, ws)

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = ws.Close()
		return
	}
	s.sockets[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()

	c.start()
	c.send(textFrame(encodeEvent("pusher:connection_established", "",
		`{"socket_id":"`+id+`","activity_timeout":120}`)))
	s.readLoop(c)

	s.mu.Lock()
	delete(s.sockets, c)
	for ch := range c.channels {
		s.removeLocked(ch, c)
	}
	s.mu.Unlock()
	c.stop()
}

// clientMessage is the part of a client frame the fixture reads.
type clientMessage struct {
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
}

// readLoop handles client frames until the socket fails or closes.
func (s *Server) readLoop(c *socket) {
	c.ws.SetReadLimit(readLimit)
	c.ws.SetPingHandler(func(p string) error {
		c.send(controlFrame(opPong, []byte(p)))
		return nil
	})
	c.ws.SetCloseHandler(func(code int, _ string) error {
		c.send(controlFrame(opClose, []byte{byte(code >> 8), byte(code)}))
		return nil
	})
	for {
		_, msg, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		var m clientMessage
		if json.Unmarshal(msg, &m) != nil {
			continue
		}
		switch m.Event {
		case "pusher:ping":
			c.send(textFrame(encodeEvent("pusher:pong", "", "{}")))
		case "pusher:subscribe":
			s.subscribe(c, channelOf(m.Data))
		case "pusher:unsubscribe":
			ch := channelOf(m.Data)
			s.mu.Lock()
			s.removeLocked(ch, c)
			s.mu.Unlock()
			delete(c.channels, ch)
		}
	}
}

// subscribe adds c to a public channel and confirms it.
func (s *Server) subscribe(c *socket, ch string) {
	if ch == "" || strings.HasPrefix(ch, "private-") || strings.HasPrefix(ch, "presence-") {
		c.send(textFrame(encodeEvent("pusher:error", "",
			`{"code":4009,"message":"the fan-out fixture serves public channels only"}`)))
		return
	}
	s.mu.Lock()
	subs := s.channels[ch]
	if subs == nil {
		subs = make(map[*socket]struct{})
		s.channels[ch] = subs
	}
	subs[c] = struct{}{}
	s.mu.Unlock()
	c.channels[ch] = struct{}{}
	c.send(textFrame(encodeEvent("pusher_internal:subscription_succeeded", ch, `"{}"`)))
}

// removeLocked takes c out of channel ch. Caller holds s.mu.
func (s *Server) removeLocked(ch string, c *socket) {
	if subs := s.channels[ch]; subs != nil {
		delete(subs, c)
		if len(subs) == 0 {
			delete(s.channels, ch)
		}
	}
}

// channelOf reads "channel" from subscribe data, an object or a JSON string
// holding one.
func channelOf(data json.RawMessage) string {
	var v struct {
		Channel string `json:"channel"`
	}
	if len(data) > 0 && data[0] == '"' {
		var inner string
		if json.Unmarshal(data, &inner) != nil {
			return ""
		}
		data = json.RawMessage(inner)
	}
	if json.Unmarshal(data, &v) != nil {
		return ""
	}
	return v.Channel
}

// triggerBody is the part of a trigger request the fixture reads.
type triggerBody struct {
	Name     string   `json:"name"`
	Data     string   `json:"data"`
	Channel  string   `json:"channel"`
	Channels []string `json:"channels"`
}

// trigger handles POST /apps/{id}/events: the signature is not checked.
func (s *Server) trigger(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		http.Error(w, `{"error":"body too large"}`, http.StatusRequestEntityTooLarge)
		return
	}
	var t triggerBody
	if err := json.Unmarshal(body, &t); err != nil || t.Name == "" {
		http.Error(w, `{"error":"want {name, data, channel or channels}"}`, http.StatusUnprocessableEntity)
		return
	}
	channels := t.Channels
	if t.Channel != "" {
		channels = append(channels, t.Channel)
	}
	data, _ := json.Marshal(t.Data) // a string always marshals
	for _, ch := range channels {
		s.broadcast(ch, textFrame(encodeEvent(t.Name, ch, string(data))))
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, "{}") // a failed answer is the client's problem
}

// broadcast queues frame to every subscriber of ch. Queueing never blocks,
// so holding the read lock across it is cheap.
func (s *Server) broadcast(ch string, frame []byte) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for c := range s.channels[ch] {
		c.send(frame)
	}
}

// encodeEvent returns {"event":…,"channel":…,"data":…}; data is raw JSON and
// channel is left out when empty.
func encodeEvent(event, channel, data string) []byte {
	type frame struct {
		Event   string          `json:"event"`
		Channel string          `json:"channel,omitempty"`
		Data    json.RawMessage `json:"data"`
	}
	b, _ := json.Marshal(frame{event, channel, json.RawMessage(data)}) // callers pass valid JSON
	return b
}
