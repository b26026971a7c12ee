# kube-ipsec's decisions for the Vagrantfile, as plain functions of their inputs (tested by
# test/integration/vagrant-host.test.ts through a real `ruby`), plus the two host probes that
# feed them (KVM, /etc/vbox/networks.conf). They run at `vagrant up` time, in Ruby, because
# they depend on the host, which can change without cluster.yaml changing: a user who adds
# the suggested line to networks.conf must not have to re-render to be let through.
require "ipaddr"
require "socket"

module KubeIpsec
  # VirtualBox >= 6.1.28 on Linux and macOS (before 7.0 there) allows host-only addresses only
  # in 192.168.56.0/21, or in the ranges /etc/vbox/networks.conf lists when that file exists.
  # The rules are Vagrant 2.3's own (plugins/providers/virtualbox/action/network.rb:
  # validate_hostonly_ip!, load_net_conf), checked for every node before any VM exists instead
  # of at the first VM's network setup.
  module VirtualBox
    NETWORKS_CONF = "/etc/vbox/networks.conf".freeze
    DEFAULT_RANGES = ["192.168.56.0/21"].freeze
    RESTRICTED_SINCE = Gem::Version.new("6.1.28")
    DARWIN_UNRESTRICTED_SINCE = Gem::Version.new("7.0.0")

    # Does this VirtualBox on this host restrict host-only addresses? platform: :linux, :darwin, :windows.
    def self.restricted?(version, platform)
      return false if platform == :windows
      v = Gem::Version.new(version.to_s[/\A\d+(\.\d+)*/] || "0")
      return false if v < RESTRICTED_SINCE
      !(platform == :darwin && v >= DARWIN_UNRESTRICTED_SINCE)
    end

    # The ranges a networks.conf allows: every entry of every line that starts with "*".
    def self.parse_networks_conf(text)
      text.each_line.map(&:strip).select { |l| l.start_with?("*") }.flat_map { |l| l[1..].split }
    end

    # nil when every node's address is allowed; else the message that stops `vagrant up`,
    # with the line to add to networks.conf and the cluster.yaml alternative.
    # conf: the text of networks.conf, nil when it does not exist.
    def self.preflight(nodes:, node_cidr:, conf:, conf_path: NETWORKS_CONF)
      ranges = conf.nil? ? DEFAULT_RANGES : parse_networks_conf(conf)
      allowed = ranges.map { |r| IPAddr.new(r) rescue nil }.compact
      outside = nodes.reject { |n| allowed.any? { |r| r.include?(IPAddr.new(n.fetch("ip"))) } }
      return nil if outside.empty?

      where = conf.nil? ? "only in #{ranges.join(", ")} (its default: #{conf_path} does not exist)" :
                          "only in the ranges of #{conf_path}: #{ranges.empty? ? "none" : ranges.join(", ")}"
      # Creating the file replaces the default range, so the new line keeps it.
      line = conf.nil? ? "* #{(DEFAULT_RANGES + [node_cidr]).join(" ")}" : "* #{node_cidr}"
      lines = [
        "kube-ipsec: VirtualBox allows host-only network addresses #{where}, and cluster.yaml puts " \
          "#{outside.length == nodes.length ? "every node" : "#{outside.length} of #{nodes.length} nodes"} outside them:",
        "    #{outside.map { |n| "#{n.fetch("name")} #{n.fetch("ip")}" }.join(", ")}",
        "  fix: allow the cluster's network: #{conf.nil? ? "create" : "add this line to"} #{conf_path} (as root)#{conf.nil? ? " with this line" : ""}:",
        "    #{line}",
      ]
      suggestion = move_into(allowed.find(&:ipv4?), node_cidr, nodes)
      if suggestion
        lines << "  or move the cluster into an allowed range in cluster.yaml: network.nodeCidr and each nodes[].ip, e.g."
        lines << "    network.nodeCidr: #{suggestion[:cidr]}   (#{suggestion[:ips].map { |name, ip| "#{name} #{ip}" }.join(", ")})"
      else
        lines << "  or move the cluster into an allowed range in cluster.yaml: network.nodeCidr and each nodes[].ip"
      end
      lines << "  No VM was created."
      lines.join("\n")
    end

    # The cluster's node network moved into `range`, each node keeping its host part; nil
    # when it does not fit.
    def self.move_into(range, node_cidr, nodes)
      return nil if range.nil?
      cluster = IPAddr.new(node_cidr)
      cluster_prefix = node_cidr.split("/").last.to_i
      range_prefix = range.prefix
      prefix = [cluster_prefix, range_prefix].max
      base = range.mask(prefix)
      size = 2**(32 - prefix)
      ips = nodes.map do |n|
        offset = IPAddr.new(n.fetch("ip")).to_i - cluster.to_i
        return nil unless offset.positive? && offset < size - 1
        [n.fetch("name"), IPAddr.new(base.to_i + offset, Socket::AF_INET).to_s]
      end
      { cidr: "#{base}/#{prefix}", ips: ips }
    end
  end

  module Libvirt
    KVM_GET_API_VERSION = 0xAE00

    # Does /dev/kvm run ordinary guests? Opening it and asking its API version proves the
    # module answers; a host whose only KVM module is kvm_pvm (a nested PVM hypervisor) has a
    # /dev/kvm that boots PVM-enabled guest kernels only, which Debian's are not.
    def self.probe_kvm(device: "/dev/kvm", modules: "/sys/module")
      return { ok: false, why: "there is no #{device}" } unless File.exist?(device)
      version = File.open(device, File::RDWR) { |f| f.ioctl(KVM_GET_API_VERSION, 0) }
      return { ok: false, why: "#{device} answers KVM API version #{version}, not 12" } unless version == 12
      loaded = ->(m) { File.directory?(File.join(modules, m)) }
      if loaded.call("kvm_pvm") && %w[kvm_intel kvm_amd].none?(&loaded)
        return { ok: false, why: "#{device} belongs to kvm_pvm, which boots only PVM-enabled guest kernels" }
      end
      { ok: true, why: "#{device} works" }
    rescue SystemCallError => e
      { ok: false, why: "#{device} cannot be used: #{e.message}" }
    end

    # vagrant-libvirt's domain type and CPU: KVM with the host's CPU when KVM works, else
    # QEMU's software emulation with its "maximum" CPU (it emulates AES-NI, so IPsec's
    # AES-GCM runs faster in the guest than on the plain qemu64 model). cluster.yaml's
    # vagrant.libvirt.driver / cpuMode / cpuModel override either.
    # cpu_model comes back as XML text: vagrant-libvirt pastes it unescaped into the domain XML
    # (templates/domain.xml.erb: `<model fallback='...'><%= @cpu_model %></model>`), where
    # markup would add elements to the VM (devices, QEMU arguments). cluster.yaml's schema
    # admits only plain model names; this keeps the XML intact whatever reaches it.
    # problem: why `vagrant up` must stop (nil when it need not).
    def self.accel(kvm:, driver: nil, cpu_mode: nil, cpu_model: nil)
      chosen = driver || (kvm[:ok] ? "kvm" : "qemu")
      mode = cpu_mode || (chosen == "kvm" ? "host-passthrough" : "maximum")
      why = driver ? "vagrant.libvirt.driver: #{driver}" : (kvm[:ok] ? "KVM: #{kvm[:why]}" : "software emulation: #{kvm[:why]}")
      problem = if chosen == "kvm" && !kvm[:ok]
                  "kube-ipsec: vagrant.libvirt.driver in cluster.yaml is kvm, but #{kvm[:why]}.\n" \
                    "  fix: remove vagrant.libvirt.driver (kube-ipsec then uses qemu, software emulation, on this host) or set it to qemu"
                end
      { driver: chosen, cpu_mode: mode, cpu_model: cpu_model&.encode(xml: :text), why: why, problem: problem }
    end
  end

  # Why a box cannot be used, before Vagrant tries to download it; nil when it can.
  # box: { "name", "key", "local" } as cluster.json lists it per provider ("local": kube-ipsec's
  # own box, which `npm run box` adds and no server has); installed: is it in Vagrant's box list.
  def self.box_problem(provider, box, installed)
    return nil if installed || !box.fetch("local")
    name, key = box.fetch("name"), box.fetch("key")
    if provider == :libvirt
      "kube-ipsec: the box #{name} (#{key} in cluster.yaml) is not installed.\n" \
        "  fix: build and add it with `sudo npm run box` (Debian packages only; minutes, once per recipe),\n" \
        "       or set #{key} to a box Vagrant can download (e.g. debian/bookworm64)"
    else
      "kube-ipsec: #{name} (#{key} in cluster.yaml) is a box for libvirt only.\n" \
        "  fix: set vagrant.#{provider}.box in cluster.yaml to a box for #{provider} (e.g. debian/bookworm64)"
    end
  end
end
