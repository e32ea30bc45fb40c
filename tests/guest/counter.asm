; snapvirt's test guest: a boot sector that is the whole "operating system".
;
; It switches to 32-bit protected mode, fills `fill_mib` MiB of RAM above 1 MiB with a
; non-zero pattern (so a memory snapshot has real RAM to save), then counts timer ticks
; (PIT at 1000 Hz) in a 64-bit counter at guest-physical address 0x500, halting between
; ticks so an idle guest costs little CPU under TCG. Tests read the counter through the
; QEMU monitor (HMP `xp /1gx 0x500`) to see whether a revert restored RAM.
;
; ACPI: by default it ignores the ACPI power button, so a graceful shutdown never completes
; (tests of the shutdown timeout and of force_stop rely on that). With `power_button` (byte
; 0x1F4 of the sector) set to 1 it behaves like a real OS instead: it enables the power button
; of the i440fx machine's PIIX4 power management (PCI 00:01.3; its I/O base is read from PCI
; config register 0x40, where SeaBIOS puts 0x600) and, when QEMU presses it (libvirt's
; shutdown), powers off through PM1a_CNT (SLP_TYP 0, QEMU's soft-off, with SLP_EN). The demo
; VM of scripts/run sets it. On other machines (q35) nothing changes.
;
; Guest-physical memory it uses:
;   0x500  u64  tick counter
;   0x508  u32  1 once the fill is done
;   0x600  IDT, 16 interrupt gates
; Settings patched into the sector by whoever makes the disk:
;   0x1F0  u32  fill size in MiB (default 16)
;   0x1F4  u8   power_button: 1 = power off on the ACPI power button (default 0: ignore it)

bits 16
org 0x7c00

start:
    cli
    xor ax, ax
    mov ds, ax
    mov ss, ax
    mov sp, 0x7c00
    in al, 0x92                 ; fast A20 gate
    or al, 2
    and al, 0xfe
    out 0x92, al
    lgdt [gdt_desc]
    mov eax, cr0
    or eax, 1
    mov cr0, eax
    jmp 0x08:protected

bits 32
protected:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov esp, 0x7000
    xor eax, eax
    mov [0x500], eax
    mov [0x504], eax
    mov [0x508], eax

    mov ecx, [fill_mib]         ; dirty fill_mib MiB above 1 MiB
    shl ecx, 18                 ; MiB -> dwords
    mov edi, 0x100000
    mov eax, 0x5a17c0de
    cld
    rep stosd
    mov dword [0x508], 1

    mov edi, 0x600              ; IDT: vector 8 (IRQ0 under the BIOS's PIC base) counts
    xor ecx, ecx
.gate:
    mov eax, ignore
    cmp ecx, 8
    jne .set
    mov eax, tick
.set:
    mov [edi], ax
    mov word [edi + 2], 0x08
    mov word [edi + 4], 0x8e00  ; present, ring 0, 32-bit interrupt gate
    shr eax, 16
    mov [edi + 6], ax
    add edi, 8
    inc ecx
    cmp ecx, 16
    jb .gate
    lidt [idt_desc]

    mov al, 0xfe                ; PIC: only IRQ0
    out 0x21, al
    mov al, 0xff
    out 0xa1, al
    mov al, 0x34                ; PIT channel 0, rate generator, 1000 Hz
    out 0x43, al
    mov ax, 1193
    out 0x40, al
    mov al, ah
    out 0x40, al

    xor ebx, ebx                ; ebx: the PM I/O base while the power button is on, else 0
    cmp byte [power_button], 1
    jne .acpi_done
    mov dx, 0xcf8               ; PCI config 00:01.3 register 0: Intel PIIX4 power management?
    mov eax, 0x80000b00
    out dx, eax
    mov dl, 0xfc
    in eax, dx
    cmp eax, 0x71138086
    jne .acpi_done
    mov dl, 0xf8                ; register 0x40: PMBASE
    mov eax, 0x80000b40
    out dx, eax
    mov dl, 0xfc
    in eax, dx
    and eax, 0xffc0
    jz .acpi_done
    mov ebx, eax
    mov edx, ebx                ; PM1a_STS: clear a stale PWRBTN_STS (write 1 to clear)
    mov ax, 0x100
    out dx, ax
    add dl, 2                   ; PM1a_EN: PWRBTN_EN
    out dx, ax
.acpi_done:
    sti
idle:
    hlt
    test ebx, ebx
    jz idle
    mov edx, ebx                ; PM1a_STS: PWRBTN_STS set?
    in ax, dx
    test ah, 1
    jz idle
    add dl, 4                   ; PM1a_CNT: SLP_TYP 0 (soft-off) | SLP_EN
    mov ax, 0x2000
    out dx, ax
    jmp idle

tick:
    add dword [0x500], 1
    adc dword [0x504], 0
ignore:
    push eax
    mov al, 0x20                ; end of interrupt
    out 0x20, al
    pop eax
    iretd

align 8
gdt:
    dq 0
    dq 0x00cf9a000000ffff       ; 0x08: code, flat 4 GiB
    dq 0x00cf92000000ffff       ; 0x10: data, flat 4 GiB
gdt_desc:
    dw gdt_desc - gdt - 1
    dd gdt
idt_desc:
    dw 16 * 8 - 1
    dd 0x600

times 0x1f0 - ($ - $$) db 0
fill_mib:
    dd 16
power_button:
    db 0

times 510 - ($ - $$) db 0
    dw 0xaa55
