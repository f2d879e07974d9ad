package app

// Comparable returns c without what Load records about where settings
// came from (which setting gave a port, whether credentials were left at
// their defaults), so that tests can compare a loaded Config with a built
// one. TestLoadProvenance checks that record.
func Comparable(c Config) Config {
	c.loaded, c.defaultCredentials = false, false
	c.Server.PortSetting, c.Metrics.PortSetting = "", ""
	return c
}
