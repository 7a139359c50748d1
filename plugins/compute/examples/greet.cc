// greet is the C++ example: a std::map built in main() answers
// /greet/LANG with a greeting.
#include <map>
#include <string>

#include "edgehost.h"

static char buf[16384];
static std::map<std::string, std::string> *greetings;
static std::string out;

static void handle(const eh_request *req) {
  std::string path(eh_string(req, req->path), req->path.len);
  std::string lang = path.rfind("/greet/", 0) == 0 ? path.substr(7) : "en";
  auto it = greetings->find(lang);
  if (it == greetings->end()) {
    eh_respond_simple(404, "text/plain", "unknown language", 16);
    return;
  }
  out = it->second + ", " + std::string(eh_string(req, req->host), req->host.len);
  eh_respond_simple(200, "text/plain", out.data(), out.size());
}

int main() {
  greetings = new std::map<std::string, std::string>{
      {"en", "hello"}, {"fr", "bonjour"}, {"de", "hallo"}, {"es", "hola"}, {"it", "ciao"}};
  if (eh_abi() == 0) return greetings->size() == 5 ? 0 : 1;
  eh_serve(handle, reinterpret_cast<eh_request *>(buf), sizeof buf, nullptr, 0);
  return 1;
}
