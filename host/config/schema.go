package config

import "github.com/hashicorp/hcl/v2"

// The gohcl schema of the host's own blocks. Unknown attributes and blocks
// are errors with their source range (gohcl reports them). Each string value
// that is parsed later (sizes, durations, addresses) has a *Range field so
// that its diagnostic points at the value.

type fileSchema struct {
	StateDir string           `hcl:"state_dir,optional"`
	Listen   *listenSchema    `hcl:"listen,block"`
	Admin    *adminSchema     `hcl:"admin,block"`
	Storage  *storageSchema   `hcl:"storage,block"`
	Limits   *limitsSchema    `hcl:"limits,block"`
	Log      *logSchema       `hcl:"log,block"`
	Cache    *cacheSchema     `hcl:"cache,block"`
	Backends []*backendSchema `hcl:"backend,block"`
	Routes   []*routeSchema   `hcl:"route,block"`
	Plugins  []*pluginSchema  `hcl:"plugin,block"`
	// file.go: readers and error pages.
	Files      []*fileBlockSchema `hcl:"file,block"`
	ErrorPages []*errorPageSchema `hcl:"error_page,block"`
}

type listenSchema struct {
	HTTP       string    `hcl:"http,optional"`
	HTTPRange  hcl.Range `hcl:"http,attr_value_range"`
	Self       string    `hcl:"self,optional"`
	SelfGroup  string    `hcl:"self_group,optional"`
	Admin      string    `hcl:"admin,optional"`
	AdminRange hcl.Range `hcl:"admin,attr_value_range"`
}

type adminSchema struct {
	Token         string `hcl:"token,optional"`
	PublicMetrics bool   `hcl:"public_metrics,optional"`
}

type storageSchema struct {
	Memory         string    `hcl:"memory,optional"`
	MemoryRange    hcl.Range `hcl:"memory,attr_value_range"`
	Disk           string    `hcl:"disk,optional"`
	DiskRange      hcl.Range `hcl:"disk,attr_value_range"`
	MaxObject      string    `hcl:"max_object,optional"`
	MaxObjectRange hcl.Range `hcl:"max_object,attr_value_range"`
	// Tenants' programs (programs.db, issue 12).
	MaxProgram        string    `hcl:"max_program,optional"`
	MaxProgramRange   hcl.Range `hcl:"max_program,attr_value_range"`
	KeepPrograms      *int      `hcl:"keep_programs,optional"`
	KeepProgramsRange hcl.Range `hcl:"keep_programs,attr_value_range"`
}

type limitsSchema struct {
	MaxHeaderBytes      string    `hcl:"max_header_bytes,optional"`
	MaxHeaderBytesRange hcl.Range `hcl:"max_header_bytes,attr_value_range"`
	HeaderTimeout       string    `hcl:"header_timeout,optional"`
	HeaderTimeoutRange  hcl.Range `hcl:"header_timeout,attr_value_range"`
	IdleTimeout         string    `hcl:"idle_timeout,optional"`
	IdleTimeoutRange    hcl.Range `hcl:"idle_timeout,attr_value_range"`
	SendTimeout         string    `hcl:"send_timeout,optional"`
	SendTimeoutRange    hcl.Range `hcl:"send_timeout,attr_value_range"`
	SelfConcurrency     int       `hcl:"self_concurrency,optional"`
	MaxConnections      int       `hcl:"max_connections,optional"`
	MaxConnectionsRange hcl.Range `hcl:"max_connections,attr_value_range"`
	MaxDepth            int       `hcl:"max_depth,optional"`
}

type logSchema struct {
	Level       string    `hcl:"level,optional"`
	LevelRange  hcl.Range `hcl:"level,attr_value_range"`
	Format      string    `hcl:"format,optional"`
	FormatRange hcl.Range `hcl:"format,attr_value_range"`
}

type cacheSchema struct {
	TargetedFields    *hcl.Attribute `hcl:"targeted_fields,optional"`
	HeuristicMax      string         `hcl:"heuristic_max,optional"`
	HeuristicMaxRange hcl.Range      `hcl:"heuristic_max,attr_value_range"`
}

type backendSchema struct {
	Name                     string       `hcl:"name,label"`
	URL                      string       `hcl:"url"`
	URLRange                 hcl.Range    `hcl:"url,attr_value_range"`
	HostHeader               string       `hcl:"host_header,optional"`
	ConnectTimeout           string       `hcl:"connect_timeout,optional"`
	ConnectTimeoutRange      hcl.Range    `hcl:"connect_timeout,attr_value_range"`
	FirstByteTimeout         string       `hcl:"first_byte_timeout,optional"`
	FirstByteTimeoutRange    hcl.Range    `hcl:"first_byte_timeout,attr_value_range"`
	BetweenBytesTimeout      string       `hcl:"between_bytes_timeout,optional"`
	BetweenBytesTimeoutRange hcl.Range    `hcl:"between_bytes_timeout,attr_value_range"`
	MaxConnections           int          `hcl:"max_connections,optional"`
	Probe                    *probeSchema `hcl:"probe,block"`
	DeclRange                hcl.Range    `hcl:",def_range"`
}

type probeSchema struct {
	Path          string    `hcl:"path,optional"`
	Interval      string    `hcl:"interval,optional"`
	IntervalRange hcl.Range `hcl:"interval,attr_value_range"`
	Timeout       string    `hcl:"timeout,optional"`
	TimeoutRange  hcl.Range `hcl:"timeout,attr_value_range"`
	Window        int       `hcl:"window,optional"`
	Threshold     int       `hcl:"threshold,optional"`
	ExpectStatus  int       `hcl:"expect_status,optional"`
	DeclRange     hcl.Range `hcl:",def_range"`
}

type routeSchema struct {
	Prefix          string         `hcl:"prefix,label"`
	LabelRange      hcl.Range      `hcl:"prefix,label_range"`
	Host            *hcl.Attribute `hcl:"host,optional"`
	When            *hcl.Attribute `hcl:"when,optional"`
	Backend         *hcl.Attribute `hcl:"backend,optional"`
	Pass            bool           `hcl:"pass,optional"`
	CacheCookies    bool           `hcl:"cache_cookies,optional"`
	DefaultTTL      string         `hcl:"default_ttl,optional"`
	DefaultTTLRange hcl.Range      `hcl:"default_ttl,attr_value_range"`
	Grace           string         `hcl:"grace,optional"`
	GraceRange      hcl.Range      `hcl:"grace,attr_value_range"`
	Keep            string         `hcl:"keep,optional"`
	KeepRange       hcl.Range      `hcl:"keep,attr_value_range"`
	Respond         *respondSchema `hcl:"respond,block"`
	Slice           *sliceSchema   `hcl:"slice,block"`
	Static          *staticSchema  `hcl:"static,block"`     // file.go
	Compute         *hcl.Attribute `hcl:"compute,optional"` // compute.go
	Chain           *hcl.Attribute `hcl:"chain,optional"`
	DeclRange       hcl.Range      `hcl:",def_range"`

	Processors *processorsSchema `hcl:"processors,block"` // processors.go
}

type sliceSchema struct {
	Size               string         `hcl:"size,optional"`
	SizeRange          hcl.Range      `hcl:"size,attr_value_range"`
	Stage              string         `hcl:"stage,optional"`
	StageRange         hcl.Range      `hcl:"stage,attr_value_range"`
	OnFailure          string         `hcl:"on_failure,optional"`
	OnFailureRange     hcl.Range      `hcl:"on_failure,attr_value_range"`
	TransitBuffer      string         `hcl:"transit_buffer,optional"`
	TransitBufferRange hcl.Range      `hcl:"transit_buffer,attr_value_range"`
	When               *hcl.Attribute `hcl:"when,optional"`
	Plugin             string         `hcl:"plugin,optional"`
	DeclRange          hcl.Range      `hcl:",def_range"`
}

type respondSchema struct {
	Status    int               `hcl:"status,optional"`
	Body      string            `hcl:"body,optional"`
	Headers   map[string]string `hcl:"headers,optional"`
	File      *hcl.Attribute    `hcl:"file,optional"` // file.NAME (file.go)
	DeclRange hcl.Range         `hcl:",def_range"`
}

type pluginSchema struct {
	Name        string            `hcl:"name,label"`
	Path        string            `hcl:"path,optional"`
	PathRange   hcl.Range         `hcl:"path,attr_value_range"`
	SHA256      string            `hcl:"sha256,optional"`
	SHA256Range hcl.Range         `hcl:"sha256,attr_value_range"`
	Env         map[string]string `hcl:"env,optional"`
	Remain      hcl.Body          `hcl:",remain"`
	DeclRange   hcl.Range         `hcl:",def_range"`
}
