; snapvirt's UEFI test guest: a UEFI application that is the whole "operating system" of an
; OVMF guest, the counterpart of counter.asm for BIOS guests. The firmware starts it as the
; removable-media boot file \EFI\BOOT\BOOTX64.EFI of a FAT disk (CMakeLists.txt makes the image).
;
; It stays in boot services and, like the boot sector:
;   1. turns off the firmware's 5-minute boot watchdog (it never returns to the firmware);
;   2. allocates the page at COUNTER_PAGE (AllocatePages with AllocateAddress, so nothing else
;      of the firmware can own it) and zeroes its fields;
;   3. increments the non-volatile UEFI variable SnapvirtBootCount (NV|BS|RT, a u64, vendor GUID
;      d9edf611-4528-4a01-8d2b-cf06fa17dcf2), so every boot changes the guest's NVRAM file;
;   4. fills `fill_mib` MiB of RAM with a non-zero pattern (1 MiB allocations wherever the
;      firmware has room, so a memory snapshot has real RAM to save), then sets the booted flag;
;   5. counts a periodic 10 ms UEFI timer (100 Hz) forever, waiting in WaitForEvent between ticks
;      (the firmware halts the CPU there, so an idle guest costs little under TCG).
; Tests read the page through the QEMU monitor (HMP `xp /1gx 0x200000`).
;
; Why 0x200000 is safe: OVMF (Debian 12's edk2 2022.11, Debian 13's 2025.02) keeps its fixed
; early-boot regions at 8 MiB and up (page tables, PEI and DXE firmware volumes) and allocates
; everything else top-down from the end of RAM, so 1 MiB .. 8 MiB is free conventional memory when
; a boot option starts. Even so the program claims the page with AllocateAddress before it
; writes to it: if the firmware ever used it, the allocation fails, the program prints why and
; returns to the firmware, and the booted flag never appears (wait_booted() fails; nothing is
; corrupted). The image itself asks for no fixed address (ImageBase 0: loaded anywhere).
;
; Guest-physical memory it uses (the page at COUNTER_PAGE):
;   +0x00  u64  tick counter
;   +0x08  u32  1 once the fill is done
;   +0x10  u64  the boot count written to SnapvirtBootCount at this boot
;   +0x18  u64  SetVariable's EFI_STATUS (0: the NVRAM write worked)
; Settings patched into the image by whoever makes the disk (found behind the 8-byte marker
; "SVTFILL:" in the FAT image's bytes, see tests/support/guest.cpp):
;   u32  fill size in MiB (default 16)
;
; The PE32+ headers are written by hand: one read/execute section, no imports, no relocations
; (the code only addresses itself RIP-relative and its data through pointers the firmware gives
; it, so it runs wherever it is loaded). Headers and section are 4 KiB aligned in the file as in
; memory, so a label's offset here is its RVA. Calls follow the Microsoft x64 convention (RCX,
; RDX, R8, R9, then the stack above 32 bytes of shadow space; RSP 16-byte aligned at the call).

bits 64
default rel
org 0

COUNTER_PAGE    equ 0x200000
PATTERN         equ 0x5a17c0de5a17c0de

; EFI_SYSTEM_TABLE
ST_CON_OUT      equ 64
ST_RUNTIME      equ 88
ST_BOOT         equ 96
; EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL
TXT_OUTPUT      equ 8
; EFI_BOOT_SERVICES
BS_ALLOC_PAGES  equ 40
BS_CREATE_EVENT equ 80
BS_SET_TIMER    equ 88
BS_WAIT_EVENT   equ 96
BS_WATCHDOG     equ 256
; EFI_RUNTIME_SERVICES
RT_GET_VARIABLE equ 72
RT_SET_VARIABLE equ 88

ALLOCATE_ANY    equ 0
ALLOCATE_ADDR   equ 2
LOADER_DATA     equ 2
EVT_TIMER       equ 0x80000000
TPL_CALLBACK    equ 8
TIMER_PERIODIC  equ 1
VAR_NV_BS_RT    equ 7

; ---- DOS stub header: only "MZ" and the offset of the PE header matter ----------------------
    dw 'MZ'
    times 0x3c - ($ - $$) db 0
    dd pe_header

; ---- PE signature and COFF file header -----------------------------------------------------
pe_header:
    dd 'PE'                         ; "PE\0\0"
    dw 0x8664                       ; Machine: x86-64
    dw 1                            ; NumberOfSections
    dd 0, 0, 0                      ; TimeDateStamp, PointerToSymbolTable, NumberOfSymbols
    dw optional_end - optional      ; SizeOfOptionalHeader
    dw 0x0022                       ; EXECUTABLE_IMAGE | LARGE_ADDRESS_AWARE (relocatable)

; ---- PE32+ optional header -----------------------------------------------------------------
optional:
    dw 0x20b                        ; PE32+
    db 0, 0                         ; linker version
    dd text_end - text              ; SizeOfCode
    dd 0, 0                         ; SizeOfInitializedData, SizeOfUninitializedData
    dd entry                        ; AddressOfEntryPoint
    dd text                         ; BaseOfCode
    dq 0                            ; ImageBase: below 1 MiB, so the firmware loads it anywhere
    dd 0x1000                       ; SectionAlignment
    dd 0x1000                       ; FileAlignment
    dw 0, 0, 0, 0, 0, 0             ; OS, image and subsystem versions
    dd 0                            ; Win32VersionValue
    dd image_end                    ; SizeOfImage
    dd text                         ; SizeOfHeaders
    dd 0                            ; CheckSum
    dw 10                           ; Subsystem: EFI application
    dw 0                            ; DllCharacteristics
    dq 0x10000, 0x1000              ; SizeOfStackReserve, SizeOfStackCommit
    dq 0x10000, 0x1000              ; SizeOfHeapReserve, SizeOfHeapCommit
    dd 0                            ; LoaderFlags
    dd 16                           ; NumberOfRvaAndSizes
    times 16 dq 0                   ; data directories: no imports, relocations, debug data
optional_end:

; ---- section table -------------------------------------------------------------------------
    db '.text', 0, 0, 0
    dd text_end - text              ; VirtualSize
    dd text                         ; VirtualAddress
    dd image_end - text             ; SizeOfRawData
    dd text                         ; PointerToRawData
    dd 0, 0                         ; PointerToRelocations, PointerToLinenumbers
    dw 0, 0                         ; NumberOfRelocations, NumberOfLinenumbers
    dd 0x60000020                   ; CODE | EXECUTE | READ

    align 0x1000, db 0

; ---- .text ---------------------------------------------------------------------------------
text:

; Stack frame of entry (after 7 pushes and the sub, RSP is 16-byte aligned):
;   [rsp+0x00..0x1f] shadow space, [rsp+0x20] 5th argument,
;   [rsp+0x40] an address out, [rsp+0x48] a size/index out, [rsp+0x50] the boot count,
;   [rsp+0x58] the timer event
FRAME equ 0x60

; EFI_STATUS efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *system_table)
entry:
    push rbx
    push rsi
    push rdi
    push r12
    push r13
    push r14
    push r15
    sub rsp, FRAME
    mov r12, rdx                    ; r12: system table
    mov r13, [r12 + ST_BOOT]        ; r13: boot services
    mov r14, [r12 + ST_RUNTIME]     ; r14: runtime services

    xor ecx, ecx                    ; SetWatchdogTimer(0, 0, 0, NULL): no reset after 5 minutes
    xor edx, edx
    xor r8d, r8d
    xor r9d, r9d
    call [r13 + BS_WATCHDOG]

    lea rdx, [msg_hello]
    call print

    ; The counter page, at its fixed address.
    mov qword [rsp + 0x40], COUNTER_PAGE
    mov ecx, ALLOCATE_ADDR
    mov edx, LOADER_DATA
    mov r8d, 1
    lea r9, [rsp + 0x40]
    call [r13 + BS_ALLOC_PAGES]
    test rax, rax
    jnz .no_counter_page
    mov rbx, [rsp + 0x40]           ; rbx: the counter page
    xor eax, eax
    mov [rbx], rax
    mov [rbx + 0x08], rax
    mov [rbx + 0x10], rax
    mov [rbx + 0x18], rax

    ; SnapvirtBootCount += 1 (0 when absent or unreadable).
    mov qword [rsp + 0x48], 8
    mov qword [rsp + 0x50], 0
    lea rcx, [var_name]
    lea rdx, [var_guid]
    xor r8d, r8d
    lea r9, [rsp + 0x48]
    lea rax, [rsp + 0x50]
    mov [rsp + 0x20], rax
    call [r14 + RT_GET_VARIABLE]    ; GetVariable(name, guid, NULL, &size, &count)
    test rax, rax
    jz .have_count
    mov qword [rsp + 0x50], 0
.have_count:
    inc qword [rsp + 0x50]
    lea rcx, [var_name]
    lea rdx, [var_guid]
    mov r8d, VAR_NV_BS_RT
    mov r9d, 8
    lea rax, [rsp + 0x50]
    mov [rsp + 0x20], rax
    call [r14 + RT_SET_VARIABLE]    ; SetVariable(name, guid, NV|BS|RT, 8, &count)
    mov [rbx + 0x18], rax
    mov rax, [rsp + 0x50]
    mov [rbx + 0x10], rax

    ; Dirty fill_mib MiB, one 1 MiB allocation at a time (the firmware's free memory is in pieces).
    mov r15d, [fill_mib]            ; r15: MiB still to fill
.fill:
    test r15d, r15d
    jz .filled
    mov ecx, ALLOCATE_ANY
    mov edx, LOADER_DATA
    mov r8d, 256
    lea r9, [rsp + 0x40]
    call [r13 + BS_ALLOC_PAGES]
    test rax, rax
    jnz .no_fill_memory
    mov rdi, [rsp + 0x40]
    mov rax, PATTERN
    mov ecx, 1024 * 1024 / 8
    cld
    rep stosq
    dec r15d
    jmp .fill
.filled:

    ; A periodic 10 ms timer (units of 100 ns).
    mov ecx, EVT_TIMER
    mov edx, TPL_CALLBACK
    xor r8d, r8d
    xor r9d, r9d
    lea rax, [rsp + 0x58]
    mov [rsp + 0x20], rax
    call [r13 + BS_CREATE_EVENT]    ; CreateEvent(EVT_TIMER, TPL_CALLBACK, NULL, NULL, &event)
    test rax, rax
    jnz .no_timer
    mov rcx, [rsp + 0x58]
    mov edx, TIMER_PERIODIC
    mov r8d, 100000
    call [r13 + BS_SET_TIMER]       ; SetTimer(event, TimerPeriodic, 10 ms)
    test rax, rax
    jnz .no_timer

    lea rdx, [msg_booted]
    call print
    mov dword [rbx + 0x08], 1
.count:
    mov ecx, 1
    lea rdx, [rsp + 0x58]
    lea r8, [rsp + 0x48]
    call [r13 + BS_WAIT_EVENT]      ; WaitForEvent(1, &event, &index)
    inc qword [rbx]
    jmp .count

.no_counter_page:
    lea rdx, [msg_no_page]
    jmp .fail
.no_fill_memory:
    lea rdx, [msg_no_fill]
    jmp .fail
.no_timer:
    lea rdx, [msg_no_timer]
.fail:
    mov rbx, rax
    call print
    mov rax, rbx                    ; the failing call's EFI_STATUS, back to the firmware
    add rsp, FRAME
    pop r15
    pop r14
    pop r13
    pop r12
    pop rdi
    pop rsi
    pop rbx
    ret

; print(RDX: UTF-16 string) on the console (r12: system table). Called with RSP 16-byte
; aligned, so RSP is 8 mod 16 here; the 0x28 bytes keep the shadow space and the alignment.
print:
    sub rsp, 0x28
    mov rcx, [r12 + ST_CON_OUT]
    call [rcx + TXT_OUTPUT]         ; ConOut->OutputString(ConOut, string)
    add rsp, 0x28
    ret

    align 8
var_guid:                           ; d9edf611-4528-4a01-8d2b-cf06fa17dcf2
    dd 0xd9edf611
    dw 0x4528, 0x4a01
    db 0x8d, 0x2b, 0xcf, 0x06, 0xfa, 0x17, 0xdc, 0xf2
var_name:
    dw __utf16__("SnapvirtBootCount"), 0
msg_hello:
    dw __utf16__("snapvirt EFI test guest"), 13, 10, 0
msg_booted:
    dw __utf16__("snapvirt: RAM filled, counting at 0x200000"), 13, 10, 0
msg_no_page:
    dw __utf16__("snapvirt: the counter page at 0x200000 is not free"), 13, 10, 0
msg_no_fill:
    dw __utf16__("snapvirt: not enough free memory for the RAM fill"), 13, 10, 0
msg_no_timer:
    dw __utf16__("snapvirt: no timer event"), 13, 10, 0

    align 8
    db 'SVTFILL:'                   ; the marker tests/support/guest.cpp patches behind
fill_mib:
    dd 16

text_end:
    align 0x1000, db 0
image_end:
