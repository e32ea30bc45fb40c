#include "api/metrics.hpp"

#include <cmath>
#include <cstdio>
#include <memory>
#include <set>

namespace snapvirt::api {

std::string prom_escape(const std::string& value) {
    std::string out;
    for (char c : value) {
        if (c == '\\' || c == '"') out += '\\';
        if (c == '\n') {
            out += "\\n";
            continue;
        }
        out += c;
    }
    return out;
}

std::string prom_number(double value) {
    if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
    if (value == std::floor(value) && std::fabs(value) < 1e15) return std::to_string(static_cast<long long>(value));
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.6g", value);
    return buf;
}

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double value) {
    std::lock_guard lock(mu_);
    std::size_t i = 0;
    while (i < bounds_.size() && value > bounds_[i]) ++i;
    ++counts_[i];
    sum_ += value;
    ++count_;
}

void Histogram::render(std::string& out, const std::string& name, const std::string& labels) const {
    std::lock_guard lock(mu_);
    const std::string sep = labels.empty() ? "" : ",";
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i <= bounds_.size(); ++i) {
        cumulative += counts_[i];
        const std::string le = i < bounds_.size() ? prom_number(bounds_[i]) : "+Inf";
        out += name + "_bucket{" + labels + sep + "le=\"" + le + "\"} " + std::to_string(cumulative) + "\n";
    }
    const std::string braces = labels.empty() ? "" : "{" + labels + "}";
    out += name + "_sum" + braces + " " + prom_number(sum_) + "\n";
    out += name + "_count" + braces + " " + std::to_string(count_) + "\n";
}

void Metrics::observe_request(const std::string& raw_method, const std::string& route, int status, double seconds) {
    // Label values a client controls are bounded: any method name is accepted by the parser.
    static const std::set<std::string> methods = {"GET", "HEAD", "POST", "PATCH", "PUT", "DELETE", "OPTIONS"};
    const std::string method = methods.count(raw_method) ? raw_method : "other";
    std::lock_guard lock(mu_);
    auto& r = routes_[{method, route}];
    ++r.by_status[status];
    if (!r.latency)
        r.latency = std::make_unique<Histogram>(
            std::vector<double>{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60});
    r.latency->observe(seconds);
}

void Metrics::add_collector(std::function<void(std::string&)> collect) {
    std::lock_guard lock(mu_);
    collectors_.push_back(std::move(collect));
}

std::string Metrics::render() const {
    std::string out;
    std::vector<std::function<void(std::string&)>> collectors;
    {
        std::lock_guard lock(mu_);
        out += "# HELP snapvirt_http_requests_total HTTP requests answered, by route and status.\n";
        out += "# TYPE snapvirt_http_requests_total counter\n";
        for (const auto& [key, stats] : routes_)
            for (const auto& [status, n] : stats.by_status)
                out += "snapvirt_http_requests_total{method=\"" + prom_escape(key.first) + "\",route=\"" +
                       prom_escape(key.second) + "\",status=\"" + std::to_string(status) + "\"} " +
                       std::to_string(n) + "\n";
        out += "# HELP snapvirt_http_request_duration_seconds Time from a request's last byte read to its answer written.\n";
        out += "# TYPE snapvirt_http_request_duration_seconds histogram\n";
        for (const auto& [key, stats] : routes_)
            stats.latency->render(out, "snapvirt_http_request_duration_seconds",
                                  "method=\"" + prom_escape(key.first) + "\",route=\"" + prom_escape(key.second) + "\"");
        collectors = collectors_;
    }
    out += "# HELP snapvirt_http_connections_open Connections open now.\n";
    out += "# TYPE snapvirt_http_connections_open gauge\n";
    out += "snapvirt_http_connections_open " + std::to_string(open_connections_.load()) + "\n";
    out += "# HELP snapvirt_http_connections_total Connections accepted.\n";
    out += "# TYPE snapvirt_http_connections_total counter\n";
    out += "snapvirt_http_connections_total " + std::to_string(connections_total_.load()) + "\n";
    out += "# HELP snapvirt_http_connections_refused_total Connections refused because the connection cap was reached.\n";
    out += "# TYPE snapvirt_http_connections_refused_total counter\n";
    out += "snapvirt_http_connections_refused_total " + std::to_string(connections_refused_.load()) + "\n";
    for (const auto& c : collectors) c(out);
    return out;
}

}  // namespace snapvirt::api
