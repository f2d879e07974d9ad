package scaling

// Peers returns the other nodes this node's last reap listed.
func (s *RedisState) Peers() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.peers...)
}
