// The browsing tool specs and their calls into a shared Browser (see browser.hpp).
#include <algorithm>

#include "tools/browse/browser.hpp"

namespace dsa {

namespace {

// An integer argument that models also send as a numeric string.
int64_t int_arg(const json& args, const char* key, int64_t fallback) {
  auto it = args.find(key);
  if (it == args.end() || it->is_null()) return fallback;
  if (it->is_number_integer()) return it->get<int64_t>();
  if (it->is_number()) return static_cast<int64_t>(it->get<double>());
  if (it->is_string()) {
    try {
      return std::stoll(it->get<std::string>());
    } catch (...) {
    }
  }
  return fallback;
}

std::string id_arg(const json& args) {
  auto it = args.find("id");
  if (it == args.end() || it->is_null()) return "";
  if (it->is_string()) return it->get<std::string>();
  return it->dump();
}

void add_deepseek_set(ToolRegistry& reg, const std::shared_ptr<Browser>& b) {
  reg.add(make_tool(
      ToolSpec{"search",
               "Searches for information related to `query` and shows the results as a page of links "
               "【id†title†domain】 with snippets. Open a result with `open(id)`.",
               json::parse(R"J({"type":"object","properties":{
                 "query":{"type":"string","description":"what to search for"},
                 "topn":{"type":"integer","description":"number of results (default 10)"},
                 "source":{"type":"string","description":"where to search (default web)"}},
                 "required":["query"]})J")},
      [b](const json& args, ToolContext&) {
        return b->search(args.at("query").get<std::string>(), static_cast<int>(int_arg(args, "topn", 10)));
      }));
  reg.add(make_tool(
      ToolSpec{"open",
               "Opens the link `id` of the page at `cursor` (default: the current page), or a URL given as "
               "`id`, and shows `num_lines` lines from line `loc`. Without `id`, scrolls the page at "
               "`cursor` to line `loc`.",
               json::parse(R"J({"type":"object","properties":{
                 "id":{"type":["integer","string"],"description":"link id on the page, or a URL"},
                 "cursor":{"type":"integer","description":"page cursor (default: current page)"},
                 "loc":{"type":"integer","description":"first line to show"},
                 "num_lines":{"type":"integer","description":"lines to show"}}})J")},
      [b](const json& args, ToolContext&) {
        return b->open(id_arg(args), static_cast<int>(int_arg(args, "cursor", -1)), int_arg(args, "loc", -1),
                       int_arg(args, "num_lines", -1));
      }));
  reg.add(make_tool(
      ToolSpec{"find",
               "Finds the exact text `pattern` (case-insensitive) in the page at `cursor` (default: the "
               "current page) and shows the matches as links to their lines.",
               json::parse(R"J({"type":"object","properties":{
                 "pattern":{"type":"string"},
                 "cursor":{"type":"integer","description":"page cursor (default: current page)"}},
                 "required":["pattern"]})J")},
      [b](const json& args, ToolContext&) {
        return b->find(args.at("pattern").get<std::string>(), static_cast<int>(int_arg(args, "cursor", -1)));
      }));
}

class BcpTools {
 public:
  BcpTools(std::shared_ptr<BrowseBackend> backend, BrowseOptions opt) : backend_(std::move(backend)), opt_(opt) {}
  Observation search(const std::string& query) {
    auto hits = backend_->search(query, opt_.bcp_k);
    if (!hits) return Observation{"search failed: " + hits.error().message, true};
    json out = json::array();
    for (const auto& h : *hits) {
      auto doc = backend_->fetch(h.id);
      const std::string text = doc ? doc->text : h.snippet;
      out.push_back({{"docid", h.id}, {"score", h.score}, {"snippet", std::string(utf8_prefix(text, opt_.bcp_snippet_chars))}});
    }
    return Observation{out.dump(2, ' ', false, json::error_handler_t::replace)};
  }
  Observation get_document(const std::string& docid) {
    auto doc = backend_->fetch(docid);
    if (!doc) return Observation{"get_document failed: " + doc.error().message, true};
    return Observation{
        json{{"docid", doc->id}, {"text", doc->text}}.dump(2, ' ', false, json::error_handler_t::replace)};
  }

 private:
  std::shared_ptr<BrowseBackend> backend_;
  BrowseOptions opt_;
};

}  // namespace

void add_browse_tools(ToolRegistry& reg, std::shared_ptr<Browser> browser, BrowseToolSet set) {
  if (set == BrowseToolSet::deepseek) {
    add_deepseek_set(reg, browser);
    return;
  }
  auto bcp = std::make_shared<BcpTools>(browser->backend(), browser->options());
  reg.add(make_tool(
      ToolSpec{"search",
               "Perform a search on a knowledge source. Returns the top hits with docid, score and snippet; "
               "the snippet holds the start of the document's text.",
               json::parse(R"J({"type":"object","properties":{"query":{"type":"string"}},"required":["query"]})J")},
      [bcp](const json& args, ToolContext&) { return bcp->search(args.at("query").get<std::string>()); }));
  reg.add(make_tool(
      ToolSpec{"get_document", "Returns the full text of the document with this docid.",
               json::parse(R"J({"type":"object","properties":{"docid":{"type":"string"}},"required":["docid"]})J")},
      [bcp](const json& args, ToolContext&) { return bcp->get_document(args.at("docid").get<std::string>()); }));
}

}  // namespace dsa
