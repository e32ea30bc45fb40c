#pragma once
// RAII owners for libvirt handles. Only included by hypervisor/*.cpp.

#include <libvirt/libvirt.h>

#include <memory>

namespace snapvirt::hv {

struct ConnectClose {
    void operator()(virConnectPtr p) const noexcept { virConnectClose(p); }
};
struct DomainFree {
    void operator()(virDomainPtr p) const noexcept { virDomainFree(p); }
};
struct SnapshotFree {
    void operator()(virDomainSnapshotPtr p) const noexcept { virDomainSnapshotFree(p); }
};
struct MallocFree {
    void operator()(void* p) const noexcept { free(p); }
};

using ConnectPtr = std::unique_ptr<virConnect, ConnectClose>;
using DomainPtr = std::unique_ptr<virDomain, DomainFree>;
using SnapshotPtr = std::unique_ptr<virDomainSnapshot, SnapshotFree>;
using CString = std::unique_ptr<char, MallocFree>;

// An array of handles returned by virConnectListAllDomains / virDomainListAllSnapshots.
template <class Handle, class Deleter>
class HandleArray {
public:
    HandleArray() = default;
    HandleArray(const HandleArray&) = delete;
    HandleArray& operator=(const HandleArray&) = delete;
    ~HandleArray() {
        if (!items_) return;
        for (int i = 0; i < count_; ++i) Deleter{}(items_[i]);
        free(items_);
    }
    Handle** out() noexcept { return &items_; }
    void set_count(int n) noexcept { count_ = n < 0 ? 0 : n; }
    int size() const noexcept { return count_; }
    Handle operator[](int i) const noexcept { return items_[i]; }

private:
    Handle* items_ = nullptr;
    int count_ = 0;
};

}  // namespace snapvirt::hv
