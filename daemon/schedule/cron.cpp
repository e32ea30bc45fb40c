// Cron expressions and time zones (cron.hpp). The search works on local wall-clock time, field by
// field and day by day (never second by second over long spans), and turns each local candidate
// into UTC through the zone: a candidate in a spring-forward gap is skipped, one in a fall-back
// overlap takes its first (earlier) occurrence.

#include "daemon/schedule/cron.hpp"

#include <date/date.h>
#include <date/tz.h>

#include <algorithm>
#include <array>
#include <bitset>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <iterator>
#include <limits>
#include <vector>

namespace snapvirt::daemon::schedule {

using std::chrono::seconds;
using Days = date::days;
using LocalSeconds = date::local_seconds;
using SysSeconds = date::sys_seconds;

// ---- Time zones ---------------------------------------------------------------------------------

// `zone` is null for UTC, which therefore works even where the tz database is missing.
struct TimeZone::Impl {
    const date::time_zone* zone = nullptr;
};

namespace {

SysSeconds sys_floor(TimeMs t) {
    return date::floor<seconds>(date::sys_time<std::chrono::milliseconds>{std::chrono::milliseconds{t}});
}

TimeMs to_ms(SysSeconds t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

LocalSeconds to_local(const TimeZone::Impl& impl, SysSeconds t) {
    if (impl.zone == nullptr)
        return LocalSeconds{t.time_since_epoch()};
    return impl.zone->to_local(t);
}

// How a local time maps to UTC: its first occurrence, or none (a gap) with the local time at
// which the gap ends.
struct Resolved {
    std::optional<SysSeconds> first;
    LocalSeconds gap_start{};  // first local second of the gap (nonexistent only)
    LocalSeconds gap_end{};    // first local second after the gap (nonexistent only)
};

Resolved resolve(const TimeZone::Impl& impl, LocalSeconds l) {
    if (impl.zone == nullptr)
        return {SysSeconds{l.time_since_epoch()}, {}, {}};
    const date::local_info info = impl.zone->get_info(l);
    switch (info.result) {
    case date::local_info::unique:
    case date::local_info::ambiguous:  // `first` is the earlier occurrence
        return {SysSeconds{l.time_since_epoch()} - info.first.offset, {}, {}};
    case date::local_info::nonexistent:
    default: {
        const SysSeconds transition = info.first.end;
        return {std::nullopt, LocalSeconds{(transition + info.first.offset).time_since_epoch()},
                LocalSeconds{(transition + info.second.offset).time_since_epoch()}};
    }
    }
}

std::string two(int v) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "%02d", v);
    return buf;
}

}  // namespace

TimeZone TimeZone::locate(const std::string& name) {
    TimeZone tz;
    tz.name_ = name;
    auto impl = std::make_shared<Impl>();
    if (name != "UTC") {
        try {
            impl->zone = date::locate_zone(name);
        } catch (const std::exception&) {
            throw TimeZoneError("The time zone '" + name + "' is not in the tz database (an IANA name such as 'Europe/Berlin' or 'UTC').");
        }
    }
    tz.impl_ = std::move(impl);
    return tz;
}

TimeZone::Local TimeZone::local(TimeMs t) const {
    static const Impl utc;
    const LocalSeconds l = to_local(impl_ ? *impl_ : utc, sys_floor(t));
    const auto day = date::floor<Days>(l);
    const date::year_month_day ymd{day};
    const date::hh_mm_ss<seconds> tod{l - day};
    return Local{int(ymd.year()), int(unsigned(ymd.month())), int(unsigned(ymd.day())),
                 int(tod.hours().count()), int(tod.minutes().count()), int(tod.seconds().count()),
                 int(date::weekday{day}.c_encoding())};
}

std::string TimeZone::date(TimeMs t) const {
    const Local l = local(t);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02d", l.year, l.month, l.day);
    return buf;
}

std::string TimeZone::time(TimeMs t) const {
    const Local l = local(t);
    return two(l.hour) + ":" + two(l.minute);
}

// ---- Parsing ------------------------------------------------------------------------------------

struct Cron::Fields {
    std::bitset<60> second, minute;
    std::bitset<24> hour;
    std::bitset<32> day_of_month;  // 1..31
    std::bitset<13> month;         // 1..12
    std::bitset<7> day_of_week;    // 0..6, 0 = Sunday
    // Vixie cron: a day field written with a leading '*' ("*", "*/2") does not restrict the day;
    // when both day fields restrict it, a day matching either runs, else both must match.
    bool day_of_month_star = true, day_of_week_star = true;
    std::vector<int> seconds, minutes, hours;  // sorted, for the time-of-day search

    bool day_matches(const date::year_month_day& ymd, date::weekday wd) const {
        const bool dom = day_of_month[unsigned(ymd.day())];
        const bool dow = day_of_week[wd.c_encoding()];
        if (!day_of_month_star && !day_of_week_star)
            return dom || dow;
        return dom && dow;
    }
};

namespace {

struct FieldSpec {
    const char* part;   // CronError::part
    const char* label;  // in messages
    int min, max;
    const std::array<const char*, 12>* names;  // names[i] is the value min + i (or null)
    int open_max;  // where "*" and "a/step" end: max, but 6 for the day of week (7 is an alias)
};

const std::array<const char*, 12> month_names{"jan", "feb", "mar", "apr", "may", "jun",
                                              "jul", "aug", "sep", "oct", "nov", "dec"};
const std::array<const char*, 12> weekday_names{"sun", "mon", "tue", "wed", "thu", "fri", "sat",
                                                nullptr, nullptr, nullptr, nullptr, nullptr};

// Day of week allows 7 (Sunday again); it is folded to 0 after parsing.
const FieldSpec second_spec{"second", "second", 0, 59, nullptr, 59};
const FieldSpec minute_spec{"minute", "minute", 0, 59, nullptr, 59};
const FieldSpec hour_spec{"hour", "hour", 0, 23, nullptr, 23};
const FieldSpec day_of_month_spec{"day_of_month", "day-of-month", 1, 31, nullptr, 31};
const FieldSpec month_spec{"month", "month", 1, 12, &month_names, 12};
const FieldSpec day_of_week_spec{"day_of_week", "day-of-week", 0, 7, &weekday_names, 6};

[[noreturn]] void fail(const FieldSpec& spec, std::string_view field, const std::string& what) {
    throw CronError(spec.part, "cron: the " + std::string(spec.label) + " field '" + std::string(field) + "' " + what);
}

std::string range_text(const FieldSpec& spec) {
    return std::to_string(spec.min) + "-" + std::to_string(spec.max);
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out)
        c = char(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

// A number or (month, weekday) name within the field's range.
int parse_value(const FieldSpec& spec, std::string_view field, std::string_view token) {
    if (token.empty())
        fail(spec, field, "is missing a value.");
    if (std::isdigit(static_cast<unsigned char>(token.front()))) {
        int v = 0;
        const auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), v);
        if (end != token.data() + token.size())
            fail(spec, field, "has '" + std::string(token) + "', which is not a number.");
        if (ec == std::errc::result_out_of_range || v < spec.min || v > spec.max)
            fail(spec, field, token == field ? "is out of range " + range_text(spec) + "."
                                             : "has " + std::string(token) + ", out of range " + range_text(spec) + ".");
        return v;
    }
    if (spec.names != nullptr) {
        const std::string name = lower(token);
        for (std::size_t i = 0; i < spec.names->size(); ++i)
            if ((*spec.names)[i] != nullptr && name == (*spec.names)[i])
                return spec.min + int(i);
        fail(spec, field, spec.names == &month_names
                              ? "is not a number (1-12) or a month name (jan-dec)."
                              : "is not a number (0-7) or a weekday name (sun-sat).");
    }
    fail(spec, field, "is not a number (" + range_text(spec) + ").");
}

// One field: a comma-separated list of `*`, `a`, `a-b`, each optionally with `/step`.
// Returns the set of values, indexed by value (0..max).
std::vector<bool> parse_field(const FieldSpec& spec, std::string_view field) {
    std::vector<bool> set(std::size_t(spec.max) + 1, false);
    std::size_t pos = 0;
    while (true) {
        const std::size_t comma = field.find(',', pos);
        const std::string_view item = field.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
        if (item.empty())
            fail(spec, field, "has an empty list item.");
        std::string_view base = item;
        int step = 1;
        bool stepped = false;
        if (const std::size_t slash = item.find('/'); slash != std::string_view::npos) {
            base = item.substr(0, slash);
            const std::string_view step_text = item.substr(slash + 1);
            const auto [end, ec] = std::from_chars(step_text.data(), step_text.data() + step_text.size(), step);
            if (step_text.empty() || end != step_text.data() + step_text.size() || ec != std::errc{} ||
                step < 1)
                fail(spec, field, "has the step '" + std::string(step_text) + "'; a step is a whole number of 1 or more.");
            stepped = true;
        }
        int first = spec.min, last = spec.open_max;
        if (base == "*") {
            // every value (from the minimum, with the step)
        } else if (const std::size_t dash = base.find('-'); dash != std::string_view::npos) {
            first = parse_value(spec, field, base.substr(0, dash));
            last = parse_value(spec, field, base.substr(dash + 1));
            if (last < first)
                fail(spec, field, "has the range '" + std::string(base) + "', which ends before it starts.");
        } else {
            first = parse_value(spec, field, base);
            // "5/15": from 5 every 15 to the field's end; a bare "5" is just 5.
            last = stepped ? std::max(first, spec.open_max) : first;
        }
        for (int v = first; v <= last; v += step)
            set[std::size_t(v)] = true;
        if (comma == std::string_view::npos)
            break;
        pos = comma + 1;
    }
    return set;
}

template <std::size_t N>
void fill(std::bitset<N>& bits, const std::vector<bool>& set) {
    for (std::size_t i = 0; i < set.size() && i < N; ++i)
        bits[i] = set[i];
}

std::vector<int> sorted_values(const std::vector<bool>& set) {
    std::vector<int> out;
    for (std::size_t i = 0; i < set.size(); ++i)
        if (set[i])
            out.push_back(int(i));
    return out;
}

std::string_view trim(std::string_view s) {
    const auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
    while (!s.empty() && space(s.front()))
        s.remove_prefix(1);
    while (!s.empty() && space(s.back()))
        s.remove_suffix(1);
    return s;
}

std::vector<std::string_view> split_fields(std::string_view s) {
    std::vector<std::string_view> out;
    std::size_t i = 0;
    while (i < s.size()) {
        while (i < s.size() && (s[i] == ' ' || s[i] == '\t'))
            ++i;
        const std::size_t start = i;
        while (i < s.size() && s[i] != ' ' && s[i] != '\t')
            ++i;
        if (i > start)
            out.push_back(s.substr(start, i - start));
    }
    return out;
}

std::string_view expand_word(std::string_view text) {
    const std::string word = lower(text);
    if (word == "@hourly")
        return "0 * * * *";
    if (word == "@daily" || word == "@midnight")
        return "0 0 * * *";
    if (word == "@weekly")
        return "0 0 * * 0";
    if (word == "@monthly")
        return "0 0 1 * *";
    if (word == "@yearly" || word == "@annually")
        return "0 0 1 1 *";
    throw CronError("expression", "cron: '" + std::string(text) +
                                      "' is not one of @hourly, @daily, @midnight, @weekly, @monthly, @yearly, @annually.");
}

// Whether some calendar day matches (the day fields against the months; every (month, day) pair
// falls on every weekday within a few decades, Feb 29 included).
bool some_day_matches(const Cron::Fields& f) {
    static constexpr std::array<int, 13> longest{0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    for (int m = 1; m <= 12; ++m) {
        if (!f.month[std::size_t(m)])
            continue;
        for (int d = 1; d <= longest[std::size_t(m)]; ++d)
            for (unsigned w = 0; w < 7; ++w)
                if (f.day_matches(date::year_month_day{date::year{2000}, date::month(unsigned(m)), date::day(unsigned(d))},
                                  date::weekday{w}))
                    return true;
    }
    return false;
}

}  // namespace

Cron Cron::parse(std::string_view text) {
    const std::string_view trimmed = trim(text);
    if (trimmed.empty())
        throw CronError("expression", "cron: the expression is empty; expected five fields (minute hour day-of-month month day-of-week), six (with a leading second) or an @word such as @daily.");
    const std::string_view expanded = trimmed.front() == '@' ? expand_word(trimmed) : trimmed;
    const std::vector<std::string_view> parts = split_fields(expanded);
    if (parts.size() != 5 && parts.size() != 6)
        throw CronError("expression", "cron: '" + std::string(trimmed) + "' has " + std::to_string(parts.size()) +
                                          " fields; expected five (minute hour day-of-month month day-of-week) or six (with a leading second).");

    auto fields = std::make_shared<Fields>();
    std::size_t i = 0;
    std::vector<bool> secs(60, false);
    if (parts.size() == 6)
        secs = parse_field(second_spec, parts[i++]);
    else
        secs[0] = true;
    const std::vector<bool> mins = parse_field(minute_spec, parts[i++]);
    const std::vector<bool> hours = parse_field(hour_spec, parts[i++]);
    const std::string_view dom_text = parts[i++];
    const std::vector<bool> dom = parse_field(day_of_month_spec, dom_text);
    const std::vector<bool> months = parse_field(month_spec, parts[i++]);
    const std::string_view dow_text = parts[i++];
    std::vector<bool> dow = parse_field(day_of_week_spec, dow_text);
    if (dow[7])
        dow[0] = true;  // 7 is Sunday too
    dow.resize(7);

    fill(fields->second, secs);
    fill(fields->minute, mins);
    fill(fields->hour, hours);
    fill(fields->day_of_month, dom);
    fill(fields->month, months);
    fill(fields->day_of_week, dow);
    fields->day_of_month_star = dom_text.front() == '*';
    fields->day_of_week_star = dow_text.front() == '*';
    fields->seconds = sorted_values(secs);
    fields->minutes = sorted_values(mins);
    fields->hours = sorted_values(hours);

    if (!some_day_matches(*fields))
        throw CronError("expression", "cron: '" + std::string(trimmed) + "' never matches: none of its months has such a day.");

    Cron cron;
    cron.text_ = std::string(trimmed);
    cron.fields_ = std::move(fields);
    return cron;
}

// ---- Searching ----------------------------------------------------------------------------------

namespace {

// The far end of a search: beyond every expression parse accepts (a Feb 29 on a given weekday
// can be 40 years away across a century year that is not a leap year).
constexpr int search_years = 60;

// The smallest matching time of day >= tod, or nullopt.
std::optional<seconds> next_time_of_day(const Cron::Fields& f, seconds tod) {
    const int h0 = int(tod.count() / 3600), m0 = int(tod.count() / 60 % 60), s0 = int(tod.count() % 60);
    for (auto h = std::lower_bound(f.hours.begin(), f.hours.end(), h0); h != f.hours.end(); ++h) {
        const int m_from = *h == h0 ? m0 : 0;
        for (auto m = std::lower_bound(f.minutes.begin(), f.minutes.end(), m_from); m != f.minutes.end(); ++m) {
            const int s_from = (*h == h0 && *m == m0) ? s0 : 0;
            const auto s = std::lower_bound(f.seconds.begin(), f.seconds.end(), s_from);
            if (s != f.seconds.end())
                return seconds{*h * 3600 + *m * 60 + *s};
        }
    }
    return std::nullopt;
}

// The largest matching time of day <= tod, or nullopt.
std::optional<seconds> prev_time_of_day(const Cron::Fields& f, seconds tod) {
    const int h0 = int(tod.count() / 3600), m0 = int(tod.count() / 60 % 60), s0 = int(tod.count() % 60);
    for (auto h = std::make_reverse_iterator(std::upper_bound(f.hours.begin(), f.hours.end(), h0));
         h != f.hours.rend(); ++h) {
        const int m_to = *h == h0 ? m0 : 59;
        for (auto m = std::make_reverse_iterator(std::upper_bound(f.minutes.begin(), f.minutes.end(), m_to));
             m != f.minutes.rend(); ++m) {
            const int s_to = (*h == h0 && *m == m0) ? s0 : 59;
            const auto s = std::upper_bound(f.seconds.begin(), f.seconds.end(), s_to);
            if (s != f.seconds.begin())
                return seconds{*h * 3600 + *m * 60 + *std::prev(s)};
        }
    }
    return std::nullopt;
}

bool day_ok(const Cron::Fields& f, date::sys_days day) {
    const date::year_month_day ymd{day};
    return f.month[unsigned(ymd.month())] && f.day_matches(ymd, date::weekday{day});
}

// The smallest matching local time >= from, searching no further than `limit`.
std::optional<LocalSeconds> next_local(const Cron::Fields& f, LocalSeconds from, date::local_days limit) {
    date::local_days day = date::floor<Days>(from);
    seconds tod = from - day;
    while (day <= limit) {
        const date::sys_days sday{day.time_since_epoch()};
        const date::year_month_day ymd{sday};
        if (!f.month[unsigned(ymd.month())]) {
            // to the first day of the next month
            const date::year_month_day next = date::year_month_day{ymd.year() / ymd.month() / 1} + date::months{1};
            day = date::local_days{date::sys_days{next}.time_since_epoch()};
            tod = seconds{0};
            continue;
        }
        if (day_ok(f, sday))
            if (const auto t = next_time_of_day(f, tod))
                return day + *t;
        day += Days{1};
        tod = seconds{0};
    }
    return std::nullopt;
}

// The largest matching local time <= from, searching no further back than `limit`.
std::optional<LocalSeconds> prev_local(const Cron::Fields& f, LocalSeconds from, date::local_days limit) {
    date::local_days day = date::floor<Days>(from);
    seconds tod = from - day;
    while (day >= limit) {
        const date::sys_days sday{day.time_since_epoch()};
        const date::year_month_day ymd{sday};
        if (!f.month[unsigned(ymd.month())]) {
            // to the last second of the previous month
            day = date::local_days{date::sys_days{ymd.year() / ymd.month() / 1}.time_since_epoch()} - Days{1};
            tod = seconds{86399};
            continue;
        }
        if (day_ok(f, sday))
            if (const auto t = prev_time_of_day(f, tod))
                return day + *t;
        day -= Days{1};
        tod = seconds{86399};
    }
    return std::nullopt;
}

}  // namespace

std::optional<TimeMs> Cron::next_after(TimeMs after, const TimeZone& zone) const {
    static const TimeZone utc = TimeZone::locate("UTC");
    const TimeZone& z = zone.impl_ ? zone : utc;
    if (!fields_)
        return std::nullopt;  // a default-constructed Cron names no slot
    const SysSeconds after_s = sys_floor(after);
    LocalSeconds from = to_local(*z.impl_, after_s);
    const date::local_days limit = date::floor<Days>(from) + Days{366 * search_years};
    // Each round either returns or moves `from` forward: past a gap at once; through a
    // fall-back overlap (local times whose first occurrence is already past) a slot at a time.
    while (const auto candidate = next_local(*fields_, from, limit)) {
        const Resolved r = resolve(*z.impl_, *candidate);
        if (!r.first) {
            from = r.gap_end;
            continue;
        }
        const TimeMs ms = to_ms(*r.first);
        if (ms > after)
            return ms;
        from = *candidate + seconds{1};
    }
    return std::nullopt;
}

std::optional<TimeMs> Cron::last_at_or_before(TimeMs at, TimeMs not_before, const TimeZone& zone) const {
    static const TimeZone utc = TimeZone::locate("UTC");
    const TimeZone& z = zone.impl_ ? zone : utc;
    if (!fields_ || at <= not_before)
        return std::nullopt;
    const SysSeconds at_s = sys_floor(at);
    LocalSeconds from = to_local(*z.impl_, at_s);
    if (z.impl_->zone != nullptr) {
        // Just after a fall-back, local times later than local(at) that occur twice already had
        // their first occurrence: start from the last of them.
        const date::sys_info now = z.impl_->zone->get_info(at_s);
        const date::sys_info before = z.impl_->zone->get_info(now.begin - seconds{1});
        if (before.offset > now.offset) {
            const LocalSeconds overlap_end{(now.begin + before.offset).time_since_epoch()};
            if (from < overlap_end)
                from = overlap_end - seconds{1};
        }
    }
    // Back to the day before not_before's, but no further than next_after looks ahead: any slot
    // is found within that, and a window reaching further back gains nothing.
    const SysSeconds earliest = std::max(sys_floor(not_before), at_s - Days{366 * search_years});
    const date::local_days limit = date::floor<Days>(to_local(*z.impl_, earliest)) - Days{1};
    while (const auto candidate = prev_local(*fields_, from, limit)) {
        const Resolved r = resolve(*z.impl_, *candidate);
        if (!r.first) {
            from = r.gap_start - seconds{1};
            continue;
        }
        const TimeMs ms = to_ms(*r.first);
        if (ms <= not_before)
            return std::nullopt;
        if (ms <= at)
            return ms;
        from = *candidate - seconds{1};
    }
    return std::nullopt;
}

// ---- max_age --------------------------------------------------------------------------------------

std::optional<std::chrono::milliseconds> parse_max_age(std::string_view text) {
    if (text.size() < 2)
        return std::nullopt;
    std::int64_t unit_ms = 0;
    switch (text.back()) {
    case 'm': unit_ms = 60'000; break;
    case 'h': unit_ms = 3'600'000; break;
    case 'd': unit_ms = 86'400'000; break;
    case 'w': unit_ms = 604'800'000; break;
    default: return std::nullopt;
    }
    const std::string_view digits = text.substr(0, text.size() - 1);
    if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return std::nullopt;
    std::int64_t n = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
    if (ec != std::errc{} || end != digits.data() + digits.size() || n <= 0 ||
        n > std::numeric_limits<std::int64_t>::max() / unit_ms)
        return std::nullopt;
    return std::chrono::milliseconds{n * unit_ms};
}

}  // namespace snapvirt::daemon::schedule
