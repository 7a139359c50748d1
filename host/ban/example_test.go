package ban_test

import (
	"fmt"

	"github.com/edgehost/edgehost/host/ban"
)

func ExampleParse() {
	b, err := ban.Parse(`req.url ~ ^/img/ && obj.http.Content-Type==image/png`)
	fmt.Println(b, b.RequestFree(), err)
	_, err = ban.Parse(`req.http.host =~ "example.com"`)
	fmt.Println(err)
	// Output:
	// req.url ~ "^/img/" && obj.http.content-type == "image/png" false <nil>
	// ban: 1:15: expected operator, found "=~"
}
