# The demo VM of scripts/run (sourced by scripts/run and by tests/readme, which makes its own
# throwaway copy under another name): 128 MiB, QEMU TCG on the i440fx machine with ACPI, one
# qcow2 disk whose "operating system" is the counting boot sector of tests/guest/counter.asm,
# set to dirty 32 MiB and to power off on the ACPI power button, as a real OS does.

# The description every demo VM carries; an older demo (which ignored ACPI) lacks it.
DEMO_DESCRIPTION="snapvirt demo VM: powers off on the ACPI power button"

# define_demo_vm NAME BOOT_SECTOR DISK_DIR: defines the domain NAME with the disk
# DISK_DIR/NAME.qcow2 (made from BOOT_SECTOR). Does not start it.
define_demo_vm() {
  local name=$1 sector=$2 dir=$3
  local disk="$dir/$name.qcow2" raw xml
  mkdir -p "$dir"
  raw=$(mktemp)
  cp "$sector" "$raw"
  printf '\x20\x00\x00\x00' | dd of="$raw" bs=1 seek=$((0x1f0)) conv=notrunc status=none   # fill_mib: 32
  printf '\x01' | dd of="$raw" bs=1 seek=$((0x1f4)) conv=notrunc status=none               # power_button: on
  truncate -s 1M "$raw"
  qemu-img convert -f raw -O qcow2 "$raw" "$disk"
  rm -f "$raw"
  xml=$(mktemp)
  cat >"$xml" <<XML
<domain type='qemu'>
  <name>$name</name>
  <description>$DEMO_DESCRIPTION</description>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='$disk'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <memballoon model='none'/>
  </devices>
</domain>
XML
  virsh -q -c qemu:///system define "$xml" >/dev/null
  rm -f "$xml"
}

# remove_demo_vm NAME DISK_DIR: powers off and undefines NAME (with its snapshots' metadata)
# and removes its disk. For tests' throwaway copies; scripts/run never removes the demo.
remove_demo_vm() {
  local name=$1 dir=$2
  virsh -q -c qemu:///system destroy "$name" >/dev/null 2>&1 || true
  virsh -q -c qemu:///system undefine "$name" --snapshots-metadata --managed-save >/dev/null 2>&1 || true
  rm -f "$dir/$name.qcow2"
}
