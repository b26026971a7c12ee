# The provisioner that hands a machine its files: Vagrant's file provisioner, except that a
# file the node already holds, byte for byte, is not sent again. Re-provisioning one minion
# sends its tree (which changed) but not the 109 MB CNI plugin and the ~110 MB of archives it
# installed the last time: under software emulation those uploads were 228 s of a 323 s
# `vagrant provision minion2` with a running cluster. `npm run provision` skips them the same way.
#
#   vm.vm.provision "kube-ipsec-upload", type: :kube_ipsec_upload do |u|
#     u.file source, destination                       # always sent
#     u.file source, destination, held: "/node/path"   # not sent when /node/path has the same sha256
#     u.file source, destination, missing: "how to get it"   # said when the source is missing
#   end
#
# Each run hashes the sources on the host and the held copies on the node (sha256sum); a held
# copy that matches is copied into place on the node instead (a local copy: seconds). The node verifies what it
# installs either way (provision/install-binaries): skipping the upload never skips a check.
require "digest"
require "shellwords"

module KubeIpsec
  module Upload
    # One file: where it is on the host, where it goes on the node, where the node keeps its
    # own copy once installed (nil: nowhere, always sent), and how to get it when it is missing.
    Item = Struct.new(:source, :destination, :held, :missing)

    # Which items to send: those without a held copy, or whose held copy's digest (node side,
    # nil when it has none) differs from the source's (host side). Pure: the provisioner
    # supplies both digests.
    def self.to_send(items, source_digest:, held_digest:)
      items.reject { |i| i.held && held_digest.call(i) == source_digest.call(i) }
    end

    # The node's sha256 of `path`, nil when there is no such file. Paths are shell-quoted:
    # they come from cluster.json, which holds values of cluster.yaml (image archive names).
    def self.node_sha256(comm, path)
      out = +""
      status = comm.execute("sha256sum -- #{Shellwords.escape(path)}", sudo: true, error_check: false) do |type, data|
        out << data if type == :stdout
      end
      status.zero? ? out.split.first : nil
    end

    class Config < Vagrant.plugin("2", :config)
      attr_reader :items

      def initialize
        super
        @items = []
      end

      def file(source, destination, held: nil, missing: nil)
        @items << Item.new(source, destination, held, missing)
      end

      def validate(_machine)
        errors = @items.reject { |i| File.file?(i.source) }.map { |i| "#{i.source} is missing#{i.missing ? ": #{i.missing}" : ""}" }
        { "kube-ipsec upload" => errors }
      end
    end

    class Provisioner < Vagrant.plugin("2", :provisioner)
      def provision
        comm = @machine.communicate
        digests = {}
        source_digest = ->(i) { digests[i.source] ||= Digest::SHA256.file(i.source).hexdigest }
        held_digest = ->(i) { Upload.node_sha256(comm, i.held) }
        send = Upload.to_send(config.items, source_digest: source_digest, held_digest: held_digest)
        config.items.each do |i|
          if send.include?(i)
            @machine.ui.detail("#{i.source} => #{i.destination}")
            comm.upload(i.source, i.destination)
          else
            @machine.ui.detail("#{i.destination}: the node holds it (#{i.held}, sha256 #{source_digest.call(i)[0, 12]}…): not sent")
            comm.sudo("cp -f -- #{Shellwords.escape(i.held)} #{Shellwords.escape(i.destination)}")
          end
        end
      end
    end
  end

  class UploadPlugin < Vagrant.plugin("2")
    name "kube-ipsec upload"
    description "Uploads files to a machine, except those it already holds byte for byte."
    config(:kube_ipsec_upload, :provisioner) { Upload::Config }
    provisioner(:kube_ipsec_upload) { Upload::Provisioner }
  end
end
